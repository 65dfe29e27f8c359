package capture

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/capture/recording"
)

// pgbouncer samples a PgBouncer admin console. Column sets differ between
// PgBouncer versions, so rows are read by column name.
type pgbouncer struct {
	cc   *pgx.ConnConfig
	r    redactor
	conn *pgx.Conn
}

func newPgBouncer(dsn string) (*pgbouncer, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse PgBouncer DSN: %s", redactDSN(err.Error(), dsn))
	}
	// The admin console speaks only the simple query protocol.
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cc.Database == "" || cc.Database == cc.User {
		cc.Database = "pgbouncer"
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 5 * time.Second
	}
	delete(cc.RuntimeParams, "application_name")
	return &pgbouncer{cc: cc, r: redactor{secrets: []string{cc.Password}}}, nil
}

func (p *pgbouncer) connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, p.cc)
	if err != nil {
		return fmt.Errorf("%w to PgBouncer at %s: %s", ErrConnect, describe(p.cc), p.r.clean(connectReason(err)))
	}
	p.conn = conn
	return nil
}

func (p *pgbouncer) close() {
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

// sample appends SHOW POOLS and SHOW SERVERS to the sample, connecting
// first if needed. On error the connection is dropped and retried on the
// next call.
func (p *pgbouncer) sample(ctx context.Context, s *recording.Sample, id, ts int64) error {
	if p.conn == nil {
		if err := p.connect(ctx); err != nil {
			return err
		}
	}
	err := p.show(ctx, "SHOW POOLS", func(get func(string) string) {
		maxwait := atoi64(get("maxwait"))*1_000_000 + atoi64(get("maxwait_us"))
		s.PgBouncerPools = append(s.PgBouncerPools, recording.PgBouncerPool{
			SampleID: id, TS: ts, Database: get("database"), User: get("user"),
			ClActive: atoi32(get("cl_active")), ClWaiting: atoi32(get("cl_waiting")),
			SvActive: atoi32(get("sv_active")), SvIdle: atoi32(get("sv_idle")), SvUsed: atoi32(get("sv_used")),
			SvTested: atoi32(get("sv_tested")), SvLogin: atoi32(get("sv_login")),
			MaxWaitMicros: maxwait, PoolMode: get("pool_mode"),
		})
	})
	if err == nil {
		err = p.show(ctx, "SHOW SERVERS", func(get func(string) string) {
			s.PgBouncerServers = append(s.PgBouncerServers, recording.PgBouncerServer{
				SampleID: id, TS: ts, Type: get("type"), User: get("user"), Database: get("database"),
				State: get("state"), Addr: get("addr"), Port: atoi32(get("port")),
				LocalAddr: get("local_addr"), LocalPort: atoi32(get("local_port")),
				ConnectTime: bouncerTime(get("connect_time")), RequestTime: bouncerTime(get("request_time")),
				RemotePID: atoi32(get("remote_pid")), ApplicationName: get("application_name"),
			})
		})
	}
	if err != nil {
		p.close()
		return fmt.Errorf("sample PgBouncer: %w", p.r.err(err))
	}
	return nil
}

func (p *pgbouncer) show(ctx context.Context, cmd string, fn func(get func(string) string)) error {
	rows, err := p.conn.Query(ctx, cmd)
	if err != nil {
		return err
	}
	defer rows.Close()
	idx := map[string]int{}
	for i, fd := range rows.FieldDescriptions() {
		idx[fd.Name] = i
	}
	for rows.Next() {
		raw := rows.RawValues()
		fn(func(name string) string {
			i, ok := idx[name]
			if !ok || i >= len(raw) || raw[i] == nil {
				return ""
			}
			return string(raw[i])
		})
	}
	return rows.Err()
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n
}

func atoi32(s string) int32 { return int32(atoi64(s)) }

// bouncerTime parses PgBouncer's "2006-01-02 15:04:05 MST" times.
func bouncerTime(s string) int64 {
	for _, layout := range []string{"2006-01-02 15:04:05 MST", "2006-01-02 15:04:05.000000 MST", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro()
		}
	}
	return 0
}
