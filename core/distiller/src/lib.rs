//! stackdistiller: raw OpenStack notifications to typed events, driven by event_definitions.yaml. Pure.
