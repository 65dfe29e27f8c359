package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrConnect wraps every failure to reach or log in to the server, so the
// command can tell a bad DSN from a failure while recording.
var ErrConnect = errors.New("cannot connect")

// server is what the recorder learned about the server on connecting.
type server struct {
	version      string
	versionNum   int
	backendPID   int32
	backendStart int64
	database     string
	databaseOID  int64
	user         string
	readAllStats bool
	odoo         bool
	sysid        string
	// columns holds "view.column" for the columns the server has.
	columns map[string]bool
}

// identity is the part of server that must not change within a segment.
func (s *server) identity() string {
	return s.sysid + "|" + s.version + "|" + fmt.Sprint(s.readAllStats, s.odoo)
}

// redactor removes a password from text that may have come from a
// connection error.
type redactor struct{ secrets []string }

func (r redactor) clean(s string) string {
	for _, p := range r.secrets {
		if p != "" {
			s = strings.ReplaceAll(s, p, "********")
		}
	}
	return s
}

func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	cleaned := r.clean(msg)
	if cleaned == msg {
		return err
	}
	return &redactedError{msg: cleaned, err: err}
}

// redactedError keeps errors.Is working on an error whose text was cleaned.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// parseDSN parses a DSN (or the PG* environment when empty) and sets the
// recorder's session defaults: its application_name, read-only
// transactions, short statement and lock timeouts, so that its session can
// never hold anything or wait long in a lock queue.
func parseDSN(dsn string, cfg Config) (*pgx.ConnConfig, redactor, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password in its own message; be thorough anyway.
		return nil, redactor{}, fmt.Errorf("parse DSN: %s", redactDSN(err.Error(), dsn))
	}
	r := redactor{secrets: []string{cc.Password}}
	rp := cc.RuntimeParams
	rp["application_name"] = ApplicationName
	rp["default_transaction_read_only"] = "on"
	rp["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	rp["lock_timeout"] = strconv.FormatInt(cfg.LockTimeout.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(max(cfg.StatementTimeout.Milliseconds()*5, 10000), 10)
	rp["jit"] = "off"
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 10 * time.Second
	}
	return cc, r, nil
}

// redactDSN hides a password that appears in text quoting the DSN.
func redactDSN(text, dsn string) string {
	if u, err := parseURLPassword(dsn); err == nil && u != "" {
		text = strings.ReplaceAll(text, u, "********")
	}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" && v != "" {
			text = strings.ReplaceAll(text, strings.Trim(v, "'"), "********")
		}
	}
	return text
}

// RedactDSN returns the DSN without its password, everything else kept, for
// a person to connect with (the password then comes from PGPASSWORD or
// ~/.pgpass): the password= field of a key=value DSN is dropped, and the
// password of a URL's user.
func RedactDSN(dsn string) string {
	if pw, _ := parseURLPassword(dsn); pw != "" {
		return strings.Replace(dsn, ":"+pw+"@", "@", 1)
	}
	fields := strings.Fields(dsn)
	kept := fields[:0]
	for _, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			continue
		}
		kept = append(kept, f)
	}
	return strings.Join(kept, " ")
}

// RedactCommand joins a command line for the recording and the logs with
// its passwords removed: the password of a DSN (key=value or URL, also as
// the value of a flag, --dsn=… or --dsn …) and the value of any argument
// or flag named like a password (--db_password=…, PGPASSWORD=…,
// --password …).
func RedactCommand(args []string) string {
	out := make([]string, len(args))
	hideNext := false
	for i, a := range args {
		if hideNext {
			out[i], hideNext = "********", false
			continue
		}
		k, v, ok := strings.Cut(a, "=")
		switch {
		case ok && isSecretName(k):
			out[i] = k + "=********"
			continue
		case !ok && strings.HasPrefix(a, "-") && isSecretName(a):
			hideNext = true
			out[i] = a
			continue
		case ok && strings.HasPrefix(k, "-"):
			a = k + "=" + redactDSN(v, v)
		}
		out[i] = shellQuote(redactDSN(a, a))
	}
	return strings.Join(out, " ")
}

// isSecretName reports whether a flag or variable name is a password's.
func isSecretName(name string) bool {
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	if strings.ContainsAny(n, " /") {
		return false // not a name: a DSN or a sentence with "password" in it
	}
	for _, w := range []string{"password", "passwd", "secret", "pwd"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// shellQuote quotes an argument the way a shell would need it (a * is
// left bare: it is what a removed password reads as).
func shellQuote(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>(){}?!#~") {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

func parseURLPassword(dsn string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return "", nil
	}
	rest := dsn[strings.Index(dsn, "://")+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", nil
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return "", nil
	}
	return pw, nil
}

// describe names the server for error messages: host, port, database and
// user, never the password.
func describe(cc *pgx.ConnConfig) string {
	host := cc.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	}
	db := cc.Database
	if db == "" {
		db = cc.User // libpq's default
	}
	return fmt.Sprintf("%s:%d (database %s, user %s)", host, cc.Port, db, cc.User)
}

// connect opens the recorder's one connection and reads the server's
// identity and columns.
func connect(ctx context.Context, cc *pgx.ConnConfig, r redactor) (*pgx.Conn, *server, error) {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		// The text is shortened and cleaned of the password; the error
		// still is ErrConnect and the driver's (a *pgconn.PgError keeps
		// its SQLSTATE for errors.As).
		msg := fmt.Sprintf("%v to %s: %s", ErrConnect, describe(cc), r.clean(connectReason(err)))
		return nil, nil, &redactedError{msg: msg, err: errors.Join(ErrConnect, err)}
	}
	srv, err := discover(ctx, conn)
	if err != nil {
		conn.Close(context.Background())
		return nil, nil, r.err(err)
	}
	return conn, srv, nil
}

// connectReason shortens pgx's connect error to its cause.
func connectReason(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return netErr.Error()
	}
	msg := err.Error()
	// pgx: "failed to connect to `user=… database=…`: host (addr): cause"
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	return msg
}

func discover(ctx context.Context, conn *pgx.Conn) (*server, error) {
	s := &server{columns: map[string]bool{}}
	var start pgtype.Timestamptz
	var dbOID pgtype.Int8
	err := conn.QueryRow(ctx, sqlIdentity).Scan(&s.version, &s.versionNum, &s.backendPID, &start,
		&s.database, &dbOID, &s.user, &s.readAllStats, &s.odoo)
	if err != nil {
		return nil, fmt.Errorf("read server identity: %w", err)
	}
	s.backendStart = micros(start)
	s.databaseOID = dbOID.Int64
	// pg_control_system() may be revoked from the role; the cluster then
	// goes by host and port.
	var sysid pgtype.Int8
	if err := conn.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&sysid); err == nil && sysid.Valid {
		s.sysid = strconv.FormatInt(sysid.Int64, 10)
	}
	rows, err := conn.Query(ctx, sqlColumns)
	if err != nil {
		return nil, fmt.Errorf("read catalog columns: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read catalog columns: %w", err)
	}
	for _, n := range names {
		s.columns[n] = true
	}
	return s, nil
}

func micros(t pgtype.Timestamptz) int64 {
	if !t.Valid || t.InfinityModifier != pgtype.Finite {
		return 0
	}
	return t.Time.UnixMicro()
}

// isConnectionError reports whether err means the connection is gone (as
// opposed to one statement failing).
func isConnectionError(conn *pgx.Conn, err error) bool {
	if conn == nil || conn.IsClosed() {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01..57P03: admin shutdown,
		// crash shutdown, cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return true
}
