"""Create a schema with SQLAlchemy's metadata.create_all through pgshard
(the caller drops it),
write rows of the sharded users table in one transaction that spans
shards, and read them back. Connection from the PG* environment."""
import os

from sqlalchemy import (Column, ForeignKey, Index, Integer, MetaData, String,
                        Table, create_engine, select, text)

url = "postgresql+psycopg2://{u}:{p}@{h}:{port}/{d}?sslmode=disable".format(
    u=os.environ["PGUSER"], p=os.environ["PGPASSWORD"], h=os.environ["PGHOST"],
    port=os.environ["PGPORT"], d=os.environ["PGDATABASE"])
engine = create_engine(url, future=True)

md = MetaData()
Table("sa_authors", md,
      Column("id", Integer, primary_key=True),
      Column("name", String(50), nullable=False))
Table("sa_books", md,
      Column("id", Integer, primary_key=True),
      Column("author_id", Integer, ForeignKey("sa_authors.id")),
      Column("title", String(200)),
      Index("sa_books_title", "title"))
md.create_all(engine)
print("created")

users = Table("users", MetaData(), autoload_with=engine)
ids = [int(x) for x in os.environ["USER_IDS"].split(",")]
with engine.begin() as conn:
    for i in ids:
        conn.execute(users.insert().values(id=i, name="sa%d" % i))
with engine.connect() as conn:
    got = sorted(r.id for r in conn.execute(select(users.c.id).where(users.c.name.like("sa%"))))
    assert got == sorted(ids), got
    n = conn.execute(text("SELECT count(*) FROM users WHERE name LIKE 'sa%'")).scalar()
    assert n == len(ids), n
print("rows", len(ids))
