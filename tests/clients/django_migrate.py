"""A Django migration that re-embeds a column (tests/clients.sh): writes an app under WORKDIR
whose migration's RunSQL calls qwen3_embed_reembed_later, and runs `migrate` on it. Django runs
each migration in a transaction (atomic, the default on PostgreSQL).

    python tests/clients/django_migrate.py "host=... port=... user=... dbname=..." WORKDIR
"""

import os
import sys
import textwrap
import time

dsn, work = sys.argv[1], sys.argv[2]
params = dict(p.split("=", 1) for p in dsn.split())

os.makedirs(os.path.join(work, "reembed_app", "migrations"))
open(os.path.join(work, "reembed_app", "__init__.py"), "w").close()
open(os.path.join(work, "reembed_app", "migrations", "__init__.py"), "w").close()
with open(os.path.join(work, "reembed_app", "migrations", "0001_reembed.py"), "w") as f:
    f.write(textwrap.dedent("""
        from django.db import migrations


        class Migration(migrations.Migration):
            operations = [
                migrations.RunSQL(
                    "SELECT qwen3_embed_reembed_later('docs', 'body', 'embedding', instruct => 'the django task')",
                    reverse_sql=migrations.RunSQL.noop,
                ),
            ]
    """))
sys.path.insert(0, work)

import django
from django.conf import settings
from django.core.management import call_command
from django.db import connection

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": params["dbname"],
                           "USER": params["user"], "HOST": params["host"], "PORT": params["port"]}},
    INSTALLED_APPS=["reembed_app"],
    USE_TZ=True,
)
django.setup()
t0 = time.monotonic()
call_command("migrate", "reembed_app", verbosity=0)
took = time.monotonic() - t0
with connection.cursor() as cur:
    cur.execute("SELECT count(*) FROM django_migrations WHERE app = 'reembed_app' AND name = '0001_reembed'")
    applied = cur.fetchone()[0] == 1
print(f"django: {'applied' if applied else 'not applied'} in {took:.2f} s")

# The models inspectdb writes for this database: the users' tables only.
import io
import re

out = io.StringIO()
call_command("inspectdb", stdout=out)
print("inspectdb models:", " ".join(sorted(re.findall(r"^class (\w+)\(models\.Model\)", out.getvalue(), re.M))))
