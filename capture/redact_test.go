package capture

import "testing"

func TestRedactCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"psql", "postgres://app:hunter2@db1/odoo", "-f", "x.sql"}, "psql postgres://app:********@db1/odoo -f x.sql"},
		{[]string{"psql", "host=db1 password=hunter2 dbname=odoo"}, "psql 'host=db1 password=******** dbname=odoo'"},
		{[]string{"migrate", "--dsn=postgresql://u:hunter2@h/db"}, "migrate --dsn=postgresql://u:********@h/db"},
		{[]string{"odoo-bin", "--db_password=hunter2", "-u", "sale"}, "odoo-bin --db_password=******** -u sale"},
		{[]string{"tool", "--password", "hunter2", "next"}, "tool --password ******** next"},
		{[]string{"env", "PGPASSWORD=hunter2", "psql"}, "env PGPASSWORD=******** psql"},
		{[]string{"sh", "-c", "echo it's done"}, `sh -c 'echo it'\''s done'`},
		{[]string{"psql", "-w", "-c", "SELECT 1"}, "psql -w -c 'SELECT 1'"},
	} {
		if got := RedactCommand(tc.args); got != tc.want {
			t.Errorf("RedactCommand(%q)\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:hunter2@db1:5432/odoo?sslmode=require":                     "postgres://app@db1:5432/odoo?sslmode=require",
		"host=db1 port=5432 password=hunter2 dbname=odoo user=app sslmode=disable": "host=db1 port=5432 dbname=odoo user=app sslmode=disable",
		"host=db1 dbname=odoo":    "host=db1 dbname=odoo",
		"postgres://app@db1/odoo": "postgres://app@db1/odoo",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
