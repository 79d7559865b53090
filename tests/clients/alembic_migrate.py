"""Alembic migrations that re-embed a column (tests/clients.sh): writes an Alembic project under
WORKDIR with two revisions and runs `alembic upgrade` on each through Alembic's command API,
as `alembic upgrade head` would. Each revision runs in Alembic's transaction (transactional DDL,
PostgreSQL's default there).

    python tests/clients/alembic_migrate.py "host=... port=... user=... dbname=..." WORKDIR
"""

import os
import sys
import textwrap
import time

from alembic import command
from alembic.config import Config
import psycopg
import sqlalchemy

dsn, work = sys.argv[1], sys.argv[2]
params = dict(p.split("=", 1) for p in dsn.split())
url = sqlalchemy.engine.URL.create(
    "postgresql+psycopg", username=params["user"], database=params["dbname"],
    query={"host": params["host"], "port": params["port"]})

os.makedirs(os.path.join(work, "versions"))
with open(os.path.join(work, "env.py"), "w") as f:
    f.write(textwrap.dedent("""
        from alembic import context
        import sqlalchemy

        engine = sqlalchemy.create_engine(context.config.attributes["url"])
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
    """))
with open(os.path.join(work, "script.py.mako"), "w") as f:
    f.write("")
revisions = {
    "0001": ("call", "op.execute(\"CALL qwen3_embed_reembed('docs', 'body', 'embedding')\")"),
    "0002": ("reembed", "op.execute(\"SELECT qwen3_embed_reembed_later('docs', 'body', 'embedding', "
                        "default_instruct => true)\")"),
}
for rev, (name, body) in revisions.items():
    with open(os.path.join(work, "versions", f"{rev}_{name}.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            from alembic import op

            revision = "{rev}"
            down_revision = {None if rev == "0001" else '"0001"'}

            def upgrade():
                {body}

            def downgrade():
                pass
        """))

cfg = Config()
cfg.set_main_option("script_location", work)
cfg.attributes["url"] = url

# Revision 0001 fails: a procedure that commits, inside the migration's transaction.
try:
    command.upgrade(cfg, "0001")
    print("call revision: applied (it should have failed)")
except sqlalchemy.exc.DBAPIError as e:
    diag = e.orig.diag
    print(f"call revision: {diag.sqlstate} hint: {diag.message_hint}")

# Mark 0001 as applied without running it, as one does with a migration replaced by another.
command.stamp(cfg, "0001")
t0 = time.monotonic()
command.upgrade(cfg, "head")
took = time.monotonic() - t0
with psycopg.connect(dsn) as conn:
    version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
print(f"reembed revision: applied at {version} in {took:.2f} s")

# What autogenerate makes of this database against models that declare nothing: the users'
# tables only (here docs); the extension's state tables are in their own schema.
import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

warnings.filterwarnings("ignore", "Did not recognize type 'vector'")  # pgvector's type: no model here

engine = sqlalchemy.create_engine(url)
with engine.connect() as conn:
    diffs = compare_metadata(MigrationContext.configure(conn), sqlalchemy.MetaData())
dropped = sorted(d[1].name if d[1].schema is None else f"{d[1].schema}.{d[1].name}"
                 for d in diffs if d[0] == "remove_table")
print("autogenerate would drop:", " ".join(dropped))
