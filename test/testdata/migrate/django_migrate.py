"""Run Django's own migrations (contenttypes, auth, sessions) against
pgshard, then use the ORM a little. Connection from PGHOST, PGPORT,
PGUSER, PGPASSWORD, PGDATABASE. Prints one line per step."""
import os
import sys

import django
from django.conf import settings

settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["PGHOST"],
            "PORT": os.environ["PGPORT"],
            "USER": os.environ["PGUSER"],
            "PASSWORD": os.environ["PGPASSWORD"],
            "NAME": os.environ["PGDATABASE"],
            "OPTIONS": {"sslmode": "disable"},
        }
    },
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
    ],
    USE_TZ=True,
)
django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=1, interactive=False)
print("migrated")

from django.contrib.auth.models import Group, User  # noqa: E402

g, _ = Group.objects.get_or_create(name="pgshard")
u = User.objects.filter(username="ada").first()
if u is None:
    u = User.objects.create_user("ada", "ada@example.com", "pw")
u.groups.add(g)
assert User.objects.get(username="ada").groups.count() == 1
print("orm ok", User.objects.count())
sys.stdout.flush()
