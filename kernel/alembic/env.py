"""One Alembic environment for every service; kernel.migrate passes the metadata."""
from alembic import context

from kernel.migrate import comparison_options

config = context.config
metadata = config.attributes["target_metadata"]
service = config.attributes["service"]



with config.attributes["engine"].connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=f"alembic_version_{service}",
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        **comparison_options(connection),
    )
    with context.begin_transaction():
        context.run_migrations()
