package capture

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lockscope/lockscope/capture/recording"
)

var (
	//go:embed sql/activity.sql
	sqlActivityTmpl string
	//go:embed sql/locks.sql
	sqlLocksTmpl string
	//go:embed sql/probe.sql
	sqlProbeTmpl string
	//go:embed sql/relations.sql
	sqlRelations string
	//go:embed sql/identity.sql
	sqlIdentity string
	//go:embed sql/columns.sql
	sqlColumns string
	//go:embed sql/odoo_modules.sql
	sqlOdooModules string
	//go:embed sql/prepared_xacts.sql
	sqlPreparedXacts string
)

func init() {
	for _, q := range []*string{&sqlRelations, &sqlIdentity, &sqlColumns, &sqlOdooModules, &sqlPreparedXacts} {
		*q = stripComments(*q)
	}
}

// optionalColumns are the columns that not every supported server has,
// with the typed NULL that stands in for each where it is absent.
var optionalColumns = []struct{ view, column, null string }{
	{"pg_stat_activity", "leader_pid", "NULL::int4"},
	{"pg_stat_activity", "query_id", "NULL::int8"},
	{"pg_locks", "waitstart", "NULL::timestamptz"},
}

// queries are the sampling statements built for one server.
type queries struct {
	activity, locks, probe string
	absent                 []string
}

func buildQueries(s *server) (queries, error) {
	vars := map[string]string{}
	var q queries
	for _, c := range optionalColumns {
		if s.columns[c.view+"."+c.column] {
			vars[c.column] = c.column
		} else {
			vars[c.column] = c.null
			q.absent = append(q.absent, c.view+"."+c.column)
		}
	}
	// Without pg_read_all_stats, other roles' wait events read NULL: find
	// the waiters in pg_locks instead (costlier, but the only way).
	if s.readAllStats {
		vars["waiting"] = "wait_event_type = 'Lock'"
		vars["count"] = "(SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock')"
	} else {
		vars["waiting"] = "pid IN (SELECT l.pid FROM pg_locks l WHERE NOT l.granted)"
		vars["count"] = "(SELECT count(DISTINCT l.pid) FROM pg_locks l WHERE NOT l.granted)"
	}
	var err error
	if q.activity, err = render(sqlActivityTmpl, vars); err != nil {
		return q, err
	}
	if q.locks, err = render(sqlLocksTmpl, vars); err != nil {
		return q, err
	}
	if q.probe, err = render(sqlProbeTmpl, vars); err != nil {
		return q, err
	}
	return q, nil
}

func render(text string, vars map[string]string) (string, error) {
	t, err := template.New("sql").Option("missingkey=error").Parse(stripComments(text))
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, vars); err != nil {
		return "", err
	}
	return b.String(), nil
}

// sampler runs the sampling statements on one connection and turns their
// rows into recording rows.
type sampler struct {
	conn     *pgx.Conn
	srv      *server
	q        queries
	queryMax int
	// names caches relation names by oid for the connected database; nil
	// entries are oids that did not resolve.
	names map[uint32]*recording.Relation
	// emitted holds the oids whose names the current segment has.
	emitted map[uint32]bool
}

// stripComments drops the leading "--" comment lines of an embedded SQL
// file: they document the file, and need not travel to the server with
// every sample (nor show up in pg_stat_activity).
func stripComments(sql string) string {
	var b strings.Builder
	for line := range strings.Lines(sql) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

func newSampler(conn *pgx.Conn, srv *server, queryMax int) (*sampler, error) {
	q, err := buildQueries(srv)
	if err != nil {
		return nil, fmt.Errorf("build sampling queries: %w", err)
	}
	return &sampler{conn: conn, srv: srv, q: q, queryMax: queryMax,
		names: map[uint32]*recording.Relation{}, emitted: map[uint32]bool{}}, nil
}

// newSegment makes the next sample re-emit relation names, so that every
// segment can be read on its own.
func (s *sampler) newSegment() { clear(s.emitted) }

// probe counts lock waiters.
func (s *sampler) probe(ctx context.Context) (ts time.Time, waiters int32, err error) {
	var n int64
	err = s.conn.QueryRow(ctx, s.q.probe).Scan(&ts, &n)
	return ts, int32(n), err
}

// full takes one full snapshot: activity with blocking pids and locks in
// one round trip (one implicit transaction, so pg_stat_activity is read
// once), then names for relation oids not seen before.
func (s *sampler) full(ctx context.Context, sample *recording.Sample, id int64) error {
	b := &pgx.Batch{}
	b.Queue(s.q.activity, s.queryMax)
	b.Queue(s.q.locks)
	b.Queue(sqlPreparedXacts)
	br := s.conn.SendBatch(ctx, b)
	ts, err := s.scanActivity(br, sample, id)
	if err == nil {
		err = s.scanLocks(br, sample, id, ts)
	}
	if err == nil {
		err = s.scanPreparedXacts(br, sample, id, ts)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	t := sample.Tick
	t.TS = ts
	t.ActivityRows = int32(len(sample.Activity))
	t.LockRows = int32(len(sample.Locks))
	t.EdgeRows = int32(len(sample.Edges))
	for i := range sample.Activity {
		if sample.Activity[i].WaitEventType == "Lock" {
			t.LockWaiters++
		}
	}
	if !s.srv.readAllStats {
		t.LockWaiters = countWaitingPIDs(sample.Locks)
	}
	return s.resolveRelations(ctx, sample, id)
}

func countWaitingPIDs(locks []recording.Lock) int32 {
	var pids []int32
	for i := range locks {
		if !locks[i].Granted && locks[i].PID != 0 {
			pids = append(pids, locks[i].PID)
		}
	}
	slices.Sort(pids)
	return int32(len(slices.Compact(pids)))
}

func (s *sampler) scanActivity(br pgx.BatchResults, sample *recording.Sample, id int64) (int64, error) {
	rows, err := br.Query()
	if err != nil {
		return 0, fmt.Errorf("sample pg_stat_activity: %w", err)
	}
	defer rows.Close()
	var (
		ts                                          time.Time
		datid, usesysid                             pgtype.Uint32
		datname, usename, appName, clientHost       pgtype.Text
		waitType, waitEvent, state, query, backType pgtype.Text
		pid                                         int32
		leaderPID, clientPort                       pgtype.Int4
		clientAddr                                  *netip.Prefix
		backendStart, xactStart, queryStart, change pgtype.Timestamptz
		xid, xmin                                   pgtype.Uint32
		queryID                                     pgtype.Int8
		blocking                                    []int32
	)
	var stamp int64
	for rows.Next() {
		clientAddr, blocking = nil, nil
		if err := rows.Scan(&ts, &datid, &datname, &pid, &leaderPID, &usesysid, &usename, &appName,
			&clientAddr, &clientHost, &clientPort, &backendStart, &xactStart, &queryStart, &change,
			&waitType, &waitEvent, &state, &xid, &xmin, &queryID, &query, &backType, &blocking); err != nil {
			return 0, fmt.Errorf("scan pg_stat_activity: %w", err)
		}
		stamp = ts.UnixMicro()
		a := recording.Activity{
			SampleID: id, TS: stamp,
			DatID: int64(datid.Uint32), DatName: datname.String, PID: pid, LeaderPID: leaderPID.Int32,
			UseSysID: int64(usesysid.Uint32), UseName: usename.String, ApplicationName: appName.String,
			ClientHostname: clientHost.String, ClientPort: clientPort.Int32,
			BackendStart: micros(backendStart), XactStart: micros(xactStart), QueryStart: micros(queryStart),
			StateChange: micros(change), WaitEventType: waitType.String, WaitEvent: waitEvent.String,
			State: state.String, BackendXID: int64(xid.Uint32), BackendXmin: int64(xmin.Uint32),
			QueryID: queryID.Int64, Query: query.String, BackendType: backType.String,
		}
		if clientAddr != nil {
			a.ClientAddr = clientAddr.Addr().String()
		}
		sample.Activity = append(sample.Activity, a)
		for _, b := range blocking {
			sample.Edges = append(sample.Edges, recording.Edge{SampleID: id, TS: stamp, PID: pid,
				BackendStart: a.BackendStart, BlockingPID: b})
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sample pg_stat_activity: %w", err)
	}
	// Sorted by pid, consecutive samples line up column by column, which
	// is what makes them compress.
	slices.SortFunc(sample.Activity, func(a, b recording.Activity) int { return int(a.PID) - int(b.PID) })
	slices.SortFunc(sample.Edges, func(a, b recording.Edge) int {
		if a.PID != b.PID {
			return int(a.PID) - int(b.PID)
		}
		return int(a.BlockingPID) - int(b.BlockingPID)
	})
	return stamp, nil
}

func (s *sampler) scanLocks(br pgx.BatchResults, sample *recording.Sample, id, ts int64) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("sample pg_locks: %w", err)
	}
	defer rows.Close()
	var (
		locktype, mode                     string
		database, relation, classid, objid pgtype.Uint32
		xid                                pgtype.Uint32
		page                               pgtype.Int4
		tuple, objsubid                    pgtype.Int2
		vxid, vtx                          pgtype.Text
		pid                                pgtype.Int4
		granted                            bool
		fastpath                           pgtype.Bool
		waitstart                          pgtype.Timestamptz
	)
	for rows.Next() {
		if err := rows.Scan(&locktype, &database, &relation, &page, &tuple, &vxid, &xid, &classid, &objid,
			&objsubid, &vtx, &pid, &mode, &granted, &fastpath, &waitstart); err != nil {
			return fmt.Errorf("scan pg_locks: %w", err)
		}
		l := recording.Lock{
			SampleID: id, TS: ts, LockType: locktype, Relation: int64(relation.Uint32), Tuple: int32(tuple.Int16),
			VirtualXID: vxid.String, TransactionID: int64(xid.Uint32), VirtualTransaction: vtx.String,
			PID: pid.Int32, Mode: mode, Granted: granted, FastPath: fastpath.Bool, WaitStart: micros(waitstart),
		}
		if database.Valid {
			l.Database = ptr(int64(database.Uint32))
		}
		if page.Valid {
			l.Page = ptr(page.Int32)
		}
		if classid.Valid {
			l.ClassID = ptr(int64(classid.Uint32))
		}
		if objid.Valid {
			l.ObjID = ptr(int64(objid.Uint32))
		}
		if objsubid.Valid {
			l.ObjSubID = ptr(int32(objsubid.Int16))
		}
		sample.Locks = append(sample.Locks, l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sample pg_locks: %w", err)
	}
	slices.SortFunc(sample.Locks, compareLocks)
	return nil
}

// scanPreparedXacts reads pg_prepared_xacts, sent in the same batch as the
// activity and lock scans (one round trip for the full sample).
func (s *sampler) scanPreparedXacts(br pgx.BatchResults, sample *recording.Sample, id, ts int64) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("sample pg_prepared_xacts: %w", err)
	}
	defer rows.Close()
	var (
		xid             int64
		gid             string
		prepared        pgtype.Timestamptz
		owner, database pgtype.Text
	)
	for rows.Next() {
		if err := rows.Scan(&xid, &gid, &prepared, &owner, &database); err != nil {
			return fmt.Errorf("scan pg_prepared_xacts: %w", err)
		}
		sample.PreparedXacts = append(sample.PreparedXacts, recording.PreparedXact{SampleID: id, TS: ts,
			Transaction: xid, GID: gid, Prepared: micros(prepared), Owner: owner.String, Database: database.String})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sample pg_prepared_xacts: %w", err)
	}
	return nil
}

func compareLocks(a, b recording.Lock) int {
	if a.PID != b.PID {
		return int(a.PID) - int(b.PID)
	}
	if c := strings.Compare(a.LockType, b.LockType); c != 0 {
		return c
	}
	if a.Relation != b.Relation {
		return int(a.Relation - b.Relation)
	}
	if a.TransactionID != b.TransactionID {
		return int(a.TransactionID - b.TransactionID)
	}
	if c := strings.Compare(a.VirtualXID, b.VirtualXID); c != 0 {
		return c
	}
	return strings.Compare(a.Mode, b.Mode)
}

func ptr[T any](v T) *T { return &v }

// resolveRelations names the relation oids of this sample that the segment
// has not named yet. Only the connected database's relations (and shared
// catalogs) can be resolved.
func (s *sampler) resolveRelations(ctx context.Context, sample *recording.Sample, id int64) error {
	var missing []uint32
	type named struct {
		oid uint32
		db  int64
	}
	var emit []named
	for i := range sample.Locks {
		l := &sample.Locks[i]
		if l.Relation == 0 || l.Database == nil || (*l.Database != s.srv.databaseOID && *l.Database != 0) {
			continue
		}
		oid := uint32(l.Relation)
		if s.emitted[oid] {
			continue
		}
		s.emitted[oid] = true
		if _, ok := s.names[oid]; !ok {
			missing = append(missing, oid)
		}
		emit = append(emit, named{oid, *l.Database})
	}
	if len(missing) > 0 {
		if len(s.names) > 200_000 { // temp tables churn oids: stay bounded
			clear(s.names)
		}
		rows, err := s.conn.Query(ctx, sqlRelations, missing)
		if err != nil {
			return fmt.Errorf("resolve relation names: %w", err)
		}
		var (
			oid                uint32
			nsp, name, relkind string
		)
		_, err = pgx.ForEachRow(rows, []any{&oid, &nsp, &name, &relkind}, func() error {
			s.names[oid] = &recording.Relation{Relation: int64(oid), Schema: nsp, Name: name, Kind: relkind}
			return nil
		})
		if err != nil {
			return fmt.Errorf("resolve relation names: %w", err)
		}
		for _, oid := range missing {
			if _, ok := s.names[oid]; !ok {
				s.names[oid] = nil
			}
		}
	}
	slices.SortFunc(emit, func(a, b named) int { return int(a.oid) - int(b.oid) })
	for _, e := range emit {
		r := s.names[e.oid]
		if r == nil {
			continue
		}
		rel := *r
		rel.SampleID = id
		rel.Database = e.db // 0 for shared catalogs
		sample.Relations = append(sample.Relations, rel)
	}
	return nil
}

// odooModules reads pending module states. The lock and the read go as one
// simple-protocol query string: one round trip, one implicit transaction,
// and NOWAIT gives up at once rather than queue behind a migration's lock
// on ir_module_module. ok is false when the lock was not available.
func (s *sampler) odooModules(ctx context.Context, sample *recording.Sample, id, ts int64) (ok bool, err error) {
	results, err := s.conn.PgConn().Exec(ctx, sqlOdooModules).ReadAll()
	if err != nil {
		if isLockNotAvailable(err) {
			return false, nil
		}
		return false, fmt.Errorf("read ir_module_module: %w", err)
	}
	if len(results) != 2 {
		return false, fmt.Errorf("read ir_module_module: %d results, want 2", len(results))
	}
	for _, row := range results[1].Rows {
		sample.OdooModules = append(sample.OdooModules, recording.OdooModule{
			SampleID: id, TS: ts, Name: string(row[0]), State: string(row[1])})
	}
	return true, nil
}

func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "57014")
}
