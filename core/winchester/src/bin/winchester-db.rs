//! winchester-db: schema administration for the winchester event store
//! (the original `winchester_db` alembic wrapper).

fn main() -> anyhow::Result<()> {
    todo!()
}
