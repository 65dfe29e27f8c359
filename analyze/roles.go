package analyze

import (
	"regexp"
	"slices"
	"strings"
)

// Session roles. Odoo's application_name is odoo-<pid> by default and
// configurable, so it does not tell the role: the rules read what the
// session does.
const (
	RoleRecorder    = "recorder"
	RoleReplication = "replication"
	RoleBackup      = "backup"
	RoleAutovacuum  = "autovacuum"
	RoleAdmin       = "admin"
	RoleMigration   = "migration"
	RoleOdooCron    = "odoo-cron"
	RoleOdooHTTP    = "odoo-http"
	RolePgBouncer   = "pgbouncer-client"
	RoleApplication = "application"
	RolePrepared    = "prepared-transaction"
	RoleOther       = "other"
)

// Protected roles are never to be cancelled or terminated during
// containment (the runbook: "Do not terminate replication/backup/admin
// sessions unless explicitly validated").
func protectedRole(role string) bool {
	return role == RoleReplication || role == RoleBackup || role == RoleAdmin
}

var (
	backupApps = regexp.MustCompile(`(?i)^(pg_dump|pg_dumpall|pg_basebackup|pgbackrest|barman|wal-g|pg_probackup)`)
	adminApps  = regexp.MustCompile(`(?i)^(psql|pgadmin|dbeaver|datagrip|pgcli|navicat)`)
	ddlQuery   = regexp.MustCompile(`(?is)^\s*(alter|create|drop|truncate|reindex|cluster|vacuum\s+full|lock\s+table|refresh\s+materialized|comment\s+on|grant|revoke)\b`)
)

// classify gives a backend's role in one sample, with the rule that
// decided it. odoo is true when the database is an Odoo database (it has
// ir_module_module).
func classify(g *graph, b Backend, rels map[int64]string, odoo bool) (role, evidence string) {
	a := g.backends[b]
	if b.PID == 0 {
		if p := g.prepared[b]; p != nil {
			return RolePrepared, "a prepared transaction (pg_prepared_xacts gid " + p.GID + "), owned by no backend"
		}
		return RolePrepared, "a prepared transaction (pid NULL in pg_locks, pid 0 in pg_blocking_pids), owned by no backend"
	}
	if a == nil {
		return RoleOther, "not in pg_stat_activity when sampled"
	}
	app, bt := a.ApplicationName, a.BackendType
	switch {
	case bt == "walsender":
		return RoleReplication, "backend_type walsender"
	case backupApps.MatchString(app):
		return RoleBackup, "application_name " + app
	case bt == "autovacuum worker" || strings.HasPrefix(a.Query, "autovacuum:"):
		return RoleAutovacuum, "autovacuum worker"
	}
	// What it holds or asks for.
	for _, l := range g.held[b] {
		if l.LockType != "relation" {
			continue
		}
		name := relName(rels, l.Relation)
		if strongMode(l.Mode) {
			return RoleMigration, "holds " + l.Mode + " on " + name + " (DDL)"
		}
		if name == "ir_module_module" && l.Mode == "RowExclusiveLock" {
			return RoleMigration, "wrote ir_module_module in its open transaction (a module install or upgrade)"
		}
	}
	if w, ok := g.waits[b]; ok && w.tag.locktype == "relation" && strongMode(w.mode) {
		return RoleMigration, "waits for " + w.mode + " on " + relName(rels, w.tag.relation) + " (DDL)"
	}
	if ddlQuery.MatchString(a.Query) {
		return RoleMigration, "runs DDL: " + firstWords(a.Query, 6)
	}
	for _, l := range g.held[b] {
		if l.LockType == "relation" && relName(rels, l.Relation) == "ir_cron" && l.Mode == "RowShareLock" {
			return RoleOdooCron, "holds RowShareLock on ir_cron: it claimed a job with SELECT … FOR NO KEY UPDATE SKIP LOCKED"
		}
	}
	if strings.Contains(a.Query, "ir_cron") || strings.Contains(a.Query, "cron_trigger") {
		return RoleOdooCron, "query on ir_cron / cron_trigger"
	}
	if adminApps.MatchString(app) {
		return RoleAdmin, "application_name " + app
	}
	if bt != "" && bt != "client backend" {
		return RoleOther, "backend_type " + bt
	}
	// Behaviour said nothing specific: a documented name hint decides
	// before the generic roles.
	if role, ok := nameHint(app); ok {
		return role, "application_name " + app + " (name hint; its behaviour was that of any client)"
	}
	if g.pooled[b.PID] {
		return RolePgBouncer, "a PgBouncer server connection (SHOW SERVERS remote_pid)"
	}
	if odoo {
		return RoleOdooHTTP, "client backend of an Odoo database running application queries"
	}
	return RoleApplication, "client backend"
}

// nameHints are application_name patterns that hint at a role when the
// session's behaviour does not show one: weaker evidence than what it
// holds or runs, stronger than "a client backend".
var nameHints = []struct {
	re   *regexp.Regexp
	role string
}{
	{regexp.MustCompile(`(?i)cron|scheduler|job[-_ ]?(queue|runner|worker)`), RoleOdooCron},
	{regexp.MustCompile(`(?i)migrat|upgrade|flyway|liquibase|alembic|odoo-bin\s+-u`), RoleMigration},
}

// hintWords are the words every name hint needs: most application names
// (odoo-4101, …) have none, and are turned away without a regexp.
var hintWords = []string{"cron", "sched", "job", "migrat", "upgrade", "flyway", "liquibase", "alembic", "odoo-bin"}

func nameHint(app string) (string, bool) {
	lower := strings.ToLower(app)
	if !slices.ContainsFunc(hintWords, func(w string) bool { return strings.Contains(lower, w) }) {
		return "", false
	}
	for _, h := range nameHints {
		if h.re.MatchString(app) {
			return h.role, true
		}
	}
	return "", false
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = append(f[:n], "…")
	}
	return strings.Join(f, " ")
}

// rolePriority ranks roles by how specific their evidence is: a session
// first seen as an ordinary client and later running DDL is a migration.
var rolePriority = map[string]int{
	RolePrepared: 10, RoleReplication: 9, RoleBackup: 9, RoleAutovacuum: 8, RoleMigration: 7, RoleOdooCron: 6,
	RoleAdmin: 5, RolePgBouncer: 4, RoleOdooHTTP: 3, RoleApplication: 2, RoleOther: 1,
}

// setRole records a role unless the session already has a more specific one.
func (s *Session) setRole(role, evidence string) {
	if rolePriority[role] > rolePriority[s.Role] {
		s.Role, s.RoleEvidence = role, evidence
	}
}
