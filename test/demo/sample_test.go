package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/sample/data.sql from the sample data")

// TestDataFile checks that deploy/sample/data.sql, which the compose seed
// job loads through pgshard, holds exactly the rows the demo loads.
func TestDataFile(t *testing.T) {
	path := filepath.Join("..", "..", dataFile)
	want := dataSQL()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not what the demo's sample data makes; go test ./test/demo -update rewrites it", dataFile)
	}
}

// TestSampleRowsPlaced checks that every sample row is placed once, on
// some shard, and that a user's orders are on the user's shard.
func TestSampleRowsPlaced(t *testing.T) {
	rows, err := sampleRows(2)
	if err != nil {
		t.Fatal(err)
	}
	shardOfUser := map[int64]int{}
	var orders int
	for i, r := range rows {
		for _, id := range r.userID {
			if _, dup := shardOfUser[id]; dup {
				t.Errorf("user %d on two shards", id)
			}
			shardOfUser[id] = i
		}
	}
	for i, r := range rows {
		for j, uid := range r.orderUserID {
			if shardOfUser[uid] != i {
				t.Errorf("order %d of user %d on shard %d, the user on %d", r.orderID[j], uid, i, shardOfUser[uid])
			}
			orders++
		}
	}
	if len(shardOfUser) != numUsers || orders != numOrders {
		t.Errorf("%d users and %d orders placed, want %d and %d", len(shardOfUser), orders, numUsers, numOrders)
	}
	if len(rows[0].userID) == 0 || len(rows[1].userID) == 0 {
		t.Errorf("a shard has no users: %d and %d", len(rows[0].userID), len(rows[1].userID))
	}
}
