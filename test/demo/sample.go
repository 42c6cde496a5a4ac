package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
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

// schemaFile is the sample schema, made on every shard by the role app,
// which then owns it: users and orders spread over the shards by user id,
// countries copied to every shard. The seed job of docker-compose.yml runs
// the same file through pgshard.
const schemaFile = "deploy/sample/schema.sql"

// dataFile holds the sample rows as INSERT statements, for loading them
// through pgshard (the seed job of docker-compose.yml): the rows sampleData
// makes, which the demo loads into each shard directly. TestDataFile keeps
// it in step (go test ./test/demo -update rewrites it).
const dataFile = "deploy/sample/data.sql"

var countries = [][2]string{
	{"au", "Australia"}, {"br", "Brazil"}, {"de", "Germany"}, {"fr", "France"},
	{"in", "India"}, {"jp", "Japan"}, {"ng", "Nigeria"}, {"us", "United States"},
}

var (
	firstNames = []string{"Ada", "Alan", "Barbara", "Edsger", "Grace", "Ken", "Margaret", "Niklaus", "Radia", "Tony"}
	lastNames  = []string{"Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Ito", "Okafor", "Silva"}
)

// sampleUser and sampleOrder are rows of the sample tables.
type sampleUser struct {
	id            int64
	name, country string
}

type sampleOrder struct {
	id, userID int64
	amount     string // numeric, as text
	createdAt  time.Time
}

// sampleData makes the sample users and orders, in id order; the same rows
// come out at every run.
func sampleData() ([]sampleUser, []sampleOrder) {
	rng := rand.New(rand.NewPCG(2026, 11))
	users := make([]sampleUser, 0, numUsers)
	for id := int64(1); id <= numUsers; id++ {
		users = append(users, sampleUser{id: id,
			name:    firstNames[(id-1)%10] + " " + lastNames[(id-1)/10%10],
			country: countries[rng.IntN(len(countries))][0]})
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	orders := make([]sampleOrder, 0, numOrders)
	for id := int64(1); id <= numOrders; id++ {
		userID := 1 + rng.Int64N(numUsers)
		cents := 199 + rng.IntN(25000)
		orders = append(orders, sampleOrder{id: id, userID: userID,
			amount:    fmt.Sprintf("%d.%02d", cents/100, cents%100),
			createdAt: start.Add(time.Duration(id)*7*time.Hour + time.Duration(rng.IntN(3600))*time.Second)})
	}
	return users, orders
}

// shardRows are the sample rows of users and orders one shard holds, as
// columns.
type shardRows struct {
	userID                []int64
	userName, userCountry []string
	orderID, orderUserID  []int64
	orderAmount           []string
	orderCreatedAt        []time.Time
}

// sampleRows places each sample row on the shard pgshard's routing puts it:
// hash on the user id over n shards, exactly where PostgreSQL's PARTITION
// BY HASH (id) with MODULUS n would. The result is indexed by shard.
func sampleRows(n int) ([]shardRows, error) {
	byUser, err := routing.NewHash(routing.KeyInt, n)
	if err != nil {
		return nil, err
	}
	rows := make([]shardRows, n)
	shardOf := func(userID int64) (*shardRows, error) {
		i, err := byUser.Shard(strconv.FormatInt(userID, 10))
		if err != nil {
			return nil, err
		}
		return &rows[i], nil
	}
	users, orders := sampleData()
	for _, u := range users {
		r, err := shardOf(u.id)
		if err != nil {
			return nil, err
		}
		r.userID = append(r.userID, u.id)
		r.userName = append(r.userName, u.name)
		r.userCountry = append(r.userCountry, u.country)
	}
	for _, o := range orders {
		r, err := shardOf(o.userID)
		if err != nil {
			return nil, err
		}
		r.orderID = append(r.orderID, o.id)
		r.orderUserID = append(r.orderUserID, o.userID)
		r.orderAmount = append(r.orderAmount, o.amount)
		r.orderCreatedAt = append(r.orderCreatedAt, o.createdAt)
	}
	return rows, nil
}

// dataSQL is the text of dataFile: every sample row, in INSERT statements
// that pgshard splits by shard (countries go to every shard); rows already
// there are left as they are, so running it again inserts nothing.
func dataSQL() string {
	var b strings.Builder
	b.WriteString(`-- pgshard's sample rows, loaded through pgshard by the seed job of
-- docker-compose.yml after schema.sql: pgshard sends each row of users and
-- orders to its user's shard and every country to every shard. make demo
-- loads the same rows into its shards directly. Made by test/demo (go test
-- ./test/demo -update); do not edit.
`)
	insert := func(head string, n int, row func(i int) string) {
		b.WriteString("\nINSERT INTO " + head + " VALUES\n")
		for i := range n {
			sep := ",\n"
			if i == n-1 {
				sep = "\nON CONFLICT DO NOTHING;\n"
			}
			b.WriteString("  " + row(i) + sep)
		}
	}
	users, orders := sampleData()
	insert("countries (code, name)", len(countries), func(i int) string {
		return fmt.Sprintf("(%s, %s)", sqlString(countries[i][0]), sqlString(countries[i][1]))
	})
	insert("users (id, name, country)", len(users), func(i int) string {
		u := users[i]
		return fmt.Sprintf("(%d, %s, %s)", u.id, sqlString(u.name), sqlString(u.country))
	})
	insert("orders (id, user_id, amount, created_at)", len(orders), func(i int) string {
		o := orders[i]
		return fmt.Sprintf("(%d, %d, %s, '%s')", o.id, o.userID, o.amount, o.createdAt.Format("2006-01-02 15:04:05-07"))
	})
	return b.String()
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// rowCounts are the rows of the sample tables on one server.
type rowCounts struct{ users, orders, countries int64 }

// load makes the sample schema on the shard's primary and inserts the
// shard's sample rows and every country, as the role app. Rows already
// there are left as they are, so a second run inserts nothing and keeps
// what was written through pgshard. It returns how many rows it inserted.
func (sh *shard) load(ctx context.Context, schema string, rows shardRows) (inserted rowCounts, err error) {
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
