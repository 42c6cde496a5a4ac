package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/routing"
	"github.com/pgshard/pgshard/test/pgtest"
)

// The sample data set: numUsers users and numOrders orders, the same at
// every run.
const (
	numUsers  = 100
	numOrders = 300
)

// schema is the sample schema, made on every shard by the role app, which
// then owns it. users and orders are spread over the shards by user id,
// countries is copied to every shard.
const schema = `
CREATE TABLE IF NOT EXISTS countries (code text PRIMARY KEY, name text);
CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text, country text);
CREATE TABLE IF NOT EXISTS orders (
	id bigint,
	user_id bigint,
	amount numeric,
	created_at timestamptz,
	PRIMARY KEY (user_id, id)
);
`

var countries = [][2]string{
	{"au", "Australia"}, {"br", "Brazil"}, {"de", "Germany"}, {"fr", "France"},
	{"in", "India"}, {"jp", "Japan"}, {"ng", "Nigeria"}, {"us", "United States"},
}

var (
	firstNames = []string{"Ada", "Alan", "Barbara", "Edsger", "Grace", "Ken", "Margaret", "Niklaus", "Radia", "Tony"}
	lastNames  = []string{"Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Ito", "Okafor", "Silva"}
)

// shardRows are the sample rows of users and orders one shard holds, as
// columns.
type shardRows struct {
	userID                []int64
	userName, userCountry []string
	orderID, orderUserID  []int64
	orderAmount           []string
	orderCreatedAt        []time.Time
}

// sampleRows makes the sample users and orders and places each row on the
// shard pgshard's routing puts it: hash on the user id over n shards,
// exactly where PostgreSQL's PARTITION BY HASH (id) with MODULUS n would.
// The result is indexed by shard. The same rows come out at every run.
func sampleRows(n int) ([]shardRows, error) {
	byUser, err := routing.NewHash(routing.KeyInt, n)
	if err != nil {
		return nil, err
	}
	rows := make([]shardRows, n)
	rng := rand.New(rand.NewPCG(2026, 11))
	for id := int64(1); id <= numUsers; id++ {
		i, err := byUser.Shard(strconv.FormatInt(id, 10))
		if err != nil {
			return nil, err
		}
		r := &rows[i]
		r.userID = append(r.userID, id)
		r.userName = append(r.userName, firstNames[(id-1)%10]+" "+lastNames[(id-1)/10%10])
		r.userCountry = append(r.userCountry, countries[rng.IntN(len(countries))][0])
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for id := int64(1); id <= numOrders; id++ {
		userID := 1 + rng.Int64N(numUsers)
		i, err := byUser.Shard(strconv.FormatInt(userID, 10))
		if err != nil {
			return nil, err
		}
		cents := 199 + rng.IntN(25000)
		r := &rows[i]
		r.orderID = append(r.orderID, id)
		r.orderUserID = append(r.orderUserID, userID)
		r.orderAmount = append(r.orderAmount, fmt.Sprintf("%d.%02d", cents/100, cents%100))
		r.orderCreatedAt = append(r.orderCreatedAt, start.Add(time.Duration(id)*7*time.Hour+time.Duration(rng.IntN(3600))*time.Second))
	}
	return rows, nil
}

// rowCounts are the rows of the sample tables on one server.
type rowCounts struct{ users, orders, countries int64 }

// load makes the sample schema on the shard's primary and inserts the
// shard's sample rows and every country, as the role app. Rows already
// there are left as they are, so a second run inserts nothing and keeps
// what was written through pgshard. It returns how many rows it inserted.
func (sh *shard) load(ctx context.Context, rows shardRows) (inserted rowCounts, err error) {
	conn, err := pgx.Connect(ctx, sh.primary.URL(user, password, database))
	if err != nil {
		return inserted, fmt.Errorf("%s: %w", sh.name, err)
	}
	defer conn.Close(context.Background())
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// The harness turns synchronous_commit off; this commit is flushed
		// at once, so that the replica can be waited for (waitReplayed).
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, schema); err != nil {
			return err
		}
		codes, names := make([]string, len(countries)), make([]string, len(countries))
		for i, c := range countries {
			codes[i], names[i] = c[0], c[1]
		}
		for _, step := range []struct {
			n    *int64
			sql  string
			args []any
		}{
			{&inserted.countries, `INSERT INTO countries (code, name)
				SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
				[]any{codes, names}},
			{&inserted.users, `INSERT INTO users (id, name, country)
				SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
				[]any{rows.userID, rows.userName, rows.userCountry}},
			{&inserted.orders, `INSERT INTO orders (id, user_id, amount, created_at)
				SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::numeric[], $4::timestamptz[]) ON CONFLICT DO NOTHING`,
				[]any{rows.orderID, rows.orderUserID, rows.orderAmount, rows.orderCreatedAt}},
		} {
			tag, err := tx.Exec(ctx, step.sql, step.args...)
			if err != nil {
				return err
			}
			*step.n = tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return inserted, fmt.Errorf("%s: load the sample data: %w", sh.name, err)
	}
	return inserted, nil
}

// countRows counts the rows of the sample tables on srv.
func countRows(ctx context.Context, srv *pgtest.Server) (rowCounts, error) {
	var c rowCounts
	conn, err := pgx.Connect(ctx, srv.SuperURL(database))
	if err != nil {
		return c, fmt.Errorf("%s: %w", srv.Name(), err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders), (SELECT count(*) FROM countries)`).
		Scan(&c.users, &c.orders, &c.countries)
	if err != nil {
		return c, fmt.Errorf("%s: %w", srv.Name(), err)
	}
	return c, nil
}
