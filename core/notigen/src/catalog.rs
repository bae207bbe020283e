//! The fixed catalogue the simulation draws from: flavors, images and the
//! names of compute and scheduler hosts.

/// A nova flavor (instance type).
#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub name: &'static str,
    /// `instance_type_id` (the DB id).
    pub id: i64,
    /// `instance_flavor_id` (the API id).
    pub flavorid: &'static str,
    pub memory_mb: i64,
    pub vcpus: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
}

pub const FLAVORS: &[Flavor] = &[
    Flavor {
        name: "m1.tiny",
        id: 2,
        flavorid: "1",
        memory_mb: 512,
        vcpus: 1,
        root_gb: 1,
        ephemeral_gb: 0,
    },
    Flavor {
        name: "m1.small",
        id: 5,
        flavorid: "2",
        memory_mb: 2048,
        vcpus: 1,
        root_gb: 20,
        ephemeral_gb: 0,
    },
    Flavor {
        name: "m1.medium",
        id: 1,
        flavorid: "3",
        memory_mb: 4096,
        vcpus: 2,
        root_gb: 40,
        ephemeral_gb: 0,
    },
    Flavor {
        name: "m1.large",
        id: 3,
        flavorid: "4",
        memory_mb: 8192,
        vcpus: 4,
        root_gb: 80,
        ephemeral_gb: 0,
    },
    Flavor {
        name: "m1.xlarge",
        id: 4,
        flavorid: "5",
        memory_mb: 16384,
        vcpus: 8,
        root_gb: 160,
        ephemeral_gb: 0,
    },
    Flavor {
        name: "4 GB Performance",
        id: 11,
        flavorid: "performance1-4",
        memory_mb: 4096,
        vcpus: 4,
        root_gb: 40,
        ephemeral_gb: 40,
    },
    Flavor {
        name: "8 GB Performance",
        id: 12,
        flavorid: "performance1-8",
        memory_mb: 8192,
        vcpus: 8,
        root_gb: 40,
        ephemeral_gb: 80,
    },
];

/// A glance image the instances boot from.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: &'static str,
    pub name: &'static str,
    pub architecture: &'static str,
    pub os_type: &'static str,
    pub os_distro: &'static str,
    pub os_version: &'static str,
    pub min_disk: i64,
    pub min_ram: i64,
}

pub const IMAGES: &[Image] = &[
    Image {
        id: "0b3e6e5c-4f0a-4b8e-9a3c-6a1f0d2b7c11",
        name: "Ubuntu 14.04 LTS",
        architecture: "x64",
        os_type: "linux",
        os_distro: "com.ubuntu",
        os_version: "14.04",
        min_disk: 20,
        min_ram: 512,
    },
    Image {
        id: "5d9c2a47-8e31-4c62-b0f4-2e7a9d13c845",
        name: "CentOS 7",
        architecture: "x64",
        os_type: "linux",
        os_distro: "org.centos",
        os_version: "7",
        min_disk: 20,
        min_ram: 512,
    },
    Image {
        id: "a7f1c3d9-2b64-4e8a-9c05-7d3e1f2a6b90",
        name: "Debian 8 (Jessie)",
        architecture: "x64",
        os_type: "linux",
        os_distro: "org.debian",
        os_version: "8",
        min_disk: 20,
        min_ram: 256,
    },
    Image {
        id: "e2c4b6a8-1d3f-4a5b-8c7d-9e0f1a2b3c4d",
        name: "Windows Server 2012 R2",
        architecture: "x64",
        os_type: "windows",
        os_distro: "com.microsoft.server",
        os_version: "2012.2",
        min_disk: 40,
        min_ram: 2048,
    },
];

/// Compute host name number `i` (publisher_id is `compute.<host>`).
pub fn compute_host(i: usize) -> String {
    format!("compute-{:03}", i + 1)
}

/// Scheduler host name number `i`.
pub fn scheduler_host(i: usize) -> String {
    format!("scheduler-{:02}", i + 1)
}
