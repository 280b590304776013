"""Alembic environment: the URL comes from DATABASE_URL like everything else."""

from alembic import context
from sqlalchemy import create_engine, pool

from workers.settings import get_settings

url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
