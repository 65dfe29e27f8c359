package report

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lockscope/lockscope/analyze"
)

// The publishable draft: title, three-sentence summary, impact, trigger,
// causes, detection and response, action items. Every sentence is drawn
// from the incident model; identifiers are Markdown code spans.

// code is s as a Markdown code span: on one line, control bytes shown as
// U+FFFD, between backtick runs longer than any inside it. Inside a code
// span Markdown and HTML are shown, not interpreted.
// appName shows an application_name in a code span, or says there is
// none (autovacuum workers and many clients set none).
func appName(s string) string {
	if oneLineText(s) == "" {
		return "no application_name"
	}
	return code(s)
}

func code(s string) string {
	s = oneLineText(s)
	if s == "" {
		return "` `"
	}
	if strings.ContainsAny(s, "<>&") {
		// Inert in a code span, but not to every renderer or reader of
		// the raw file: text with markup characters is escaped instead.
		return inline(s)
	}
	n := 1
	for _, m := range backticks.FindAllString(s, -1) {
		n = max(n, len(m)+1)
	}
	f := strings.Repeat("`", n)
	pad := ""
	if s[0] == '`' || s[len(s)-1] == '`' || (s[0] == ' ' && s[len(s)-1] == ' ') {
		pad = " "
	}
	return f + pad + s + pad + f
}

// codeCell is code for a table cell: at most n runes, pipes escaped (a
// GFM table splits cells before it reads code spans).
func codeCell(s string, n int) string {
	c := code(oneLine(s, n))
	if strings.HasPrefix(c, "`") {
		return strings.ReplaceAll(c, "|", `\|`)
	}
	return c // inline already escaped its pipes
}

// oneLineText folds whitespace runs to one space and shows control bytes
// as U+FFFD.
func oneLineText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '�'
		}
		return r
	}, s)
}

// codes joins names as code spans.
func codes(names []string) string {
	if len(names) == 0 {
		return "no named relation"
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = code(n)
	}
	return joinAnd(out)
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

var stmtHeadRE = regexp.MustCompile(`(?i)^\s*(alter\s+table|alter\s+index|create\s+(?:unique\s+)?index(?:\s+concurrently)?|drop\s+(?:table|index)|truncate(?:\s+table)?|lock\s+table|reindex(?:\s+table|\s+index)?|cluster|vacuum(?:\s+full)?|analyze|refresh\s+materialized\s+view|create\s+trigger)\b`)

// stmtSeen reports whether a recorded statement says what the DDL did.
func stmtSeen(d *analyze.DDL) bool {
	return stmtHeadRE.MatchString(d.LockStatement) || stmtHeadRE.MatchString(d.Query)
}

// theDDL names the DDL in running text: its statement as a code span, or
// the migration and its lock when no sample saw the statement.
func theDDL(d *analyze.DDL) string {
	if stmtSeen(d) {
		return "the migration's " + code(stmtHead(d))
	}
	return "the migration (its " + d.Mode + " on " + code(d.Relation) + ")"
}

// stmtHead names what the DDL did: "ALTER TABLE stock_move", or its lock
// when no statement says it.
func stmtHead(d *analyze.DDL) string {
	for _, q := range []string{d.LockStatement, d.Query} {
		if m := stmtHeadRE.FindStringSubmatch(q); m != nil {
			verb := strings.ToUpper(strings.Join(strings.Fields(m[1]), " "))
			if strings.HasPrefix(verb, "CREATE") && strings.Contains(verb, "INDEX") {
				return verb + " on " + d.Relation
			}
			return verb + " " + d.Relation
		}
	}
	return d.Mode + " on " + d.Relation
}

// lockParts splits a lock in words into what it is and the relation it
// is on ("" when the words already name the target).
func lockParts(mode, target string) (string, string) {
	switch {
	case strings.HasPrefix(target, "transaction "):
		return "row locks (its " + target + ")", ""
	case strings.HasPrefix(target, "row "):
		return "a row lock on " + target, ""
	case strings.HasPrefix(target, "virtual transaction "):
		return "an open transaction (" + target + ")", ""
	case strings.HasPrefix(target, "advisory lock "):
		return "an " + target, ""
	}
	w, ok := map[string]string{
		"AccessShareLock":          "a read lock",
		"RowShareLock":             "a row-locking read lock (SELECT … FOR UPDATE/SHARE)",
		"RowExclusiveLock":         "a write lock",
		"ShareUpdateExclusiveLock": "a maintenance lock (VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY)",
		"ShareLock":                "a share lock that blocks writes (CREATE INDEX)",
		"ShareRowExclusiveLock":    "a lock that blocks writes (CREATE TRIGGER, some ALTER TABLE)",
		"ExclusiveLock":            "an exclusive lock that blocks writes",
		"AccessExclusiveLock":      "an exclusive lock that blocks reads and writes (ALTER TABLE, DROP, TRUNCATE)",
	}[mode]
	if !ok {
		w = "a " + mode
	}
	return w, target
}

// locksWords says a root blocker's locks in plain words, those on one
// relation together, identifiers in code spans.
func locksWords(locks []analyze.HeldLock) string {
	var order []string
	by := map[string][]string{}
	var other []string
	for _, l := range locks {
		w, on := lockParts(l.Mode, l.Target)
		if on == "" {
			other = append(other, w)
			continue
		}
		if _, ok := by[on]; !ok {
			order = append(order, on)
		}
		by[on] = append(by[on], w)
	}
	var out []string
	for _, on := range order {
		out = append(out, joinAnd(by[on])+" on "+code(on))
	}
	for _, o := range other {
		out = append(out, inline(o))
	}
	if len(out) == 0 {
		return "its locks"
	}
	return joinAnd(out)
}

// rolePhrase names a root blocker by what it was, never by pid.
func rolePhrase(r analyze.RootBlocker) string {
	switch {
	case r.PID == 0 && r.GID != "":
		return "a prepared transaction (" + code(r.GID) + ")"
	case r.PID == 0:
		return "a prepared transaction"
	case r.Role == analyze.RoleOdooCron:
		return "an Odoo cron job's transaction"
	case r.Role == analyze.RoleOdooHTTP:
		return "an Odoo worker's transaction"
	case r.Role == analyze.RoleMigration:
		return "the migration's own transaction"
	case r.Role == analyze.RoleBackup:
		return "a backup (" + code(r.ApplicationName) + ")"
	case r.Role == analyze.RoleAdmin:
		return "an admin session's transaction"
	case r.Role == analyze.RoleAutovacuum && analyze.AntiWraparound(r.Query):
		return "an anti-wraparound autovacuum (which PostgreSQL does not cancel for lock waiters)"
	case r.Role == analyze.RoleAutovacuum:
		return "an autovacuum worker"
	}
	return "an application transaction (" + code(r.ApplicationName) + ")"
}

// subject names a root blocker as the subject of a sentence.
func subject(r analyze.RootBlocker) string {
	switch {
	case r.PID == 0:
		return "the prepared transaction"
	case r.Role == analyze.RoleOdooCron:
		return "the cron job"
	case r.Role == analyze.RoleOdooHTTP:
		return "the Odoo worker"
	case r.Role == analyze.RoleMigration:
		return "the migration"
	case r.Role == analyze.RoleBackup:
		return "the backup"
	case r.Role == analyze.RoleAutovacuum:
		return "the autovacuum"
	}
	return "the blocking session"
}

// rootAge is how long the root blocker's transaction had been open when
// it stopped blocking (or the incident ended).
func rootAge(inc analyze.Incident, r analyze.RootBlocker) float64 {
	if r.XactStart == nil {
		return r.TransactionAge
	}
	until := r.LastSeen
	if r.Gone != nil {
		until = *r.Gone
	}
	return until.Sub(*r.XactStart).Seconds()
}

// stateWords is a root blocker's state in words.
func stateWords(inc analyze.Incident, r analyze.RootBlocker) string {
	switch {
	case r.PID == 0:
		return "left prepared with no session behind it (" + human(rootAge(inc, r)) + " old)"
	case strings.HasPrefix(r.State, "idle in transaction"):
		return "left idle in transaction (" + human(rootAge(inc, r)) + " old)"
	case r.State == "active":
		return "running a statement (its transaction " + human(rootAge(inc, r)) + " old)"
	}
	return r.State
}

// title is the incident's headline: date, effect, table, change.
func title(inc analyze.Incident) string {
	s := fmt.Sprintf("%s UTC — %s %s on %s", inc.Start.UTC().Format("2006-01-02 15:04"), human(inc.Duration), stallWord(inc), where(inc))
	if d := inc.DDL; d != nil {
		if stmtSeen(d) {
			s += " during " + code(stmtHead(d))
		} else {
			s += " during a migration"
		}
		if d.ApplicationName != "" {
			s += " (" + code(d.ApplicationName) + ")"
		}
	}
	return s
}

// where names what the sessions waited for: the relations, or the hot
// object of a contention without one (an advisory lock key).
func where(inc analyze.Incident) string {
	switch {
	case len(inc.Relations) > 0:
		return codes(inc.Relations)
	case inc.Contention != nil && inc.Contention.Object != "":
		return code(inc.Contention.Object)
	case inc.DDL != nil && inc.DDL.Relation != "":
		return code(inc.DDL.Relation)
	case inc.Deadlock != nil:
		rows := true
		for _, m := range inc.Deadlock.Members {
			rows = rows && strings.Contains(m.WaitsFor, "transaction ")
		}
		if rows {
			return "each other's row locks"
		}
		return "each other's locks"
	}
	return "no named relation"
}

// sessions says n sessions, singular or plural.
func sessions(n int) string {
	if n == 1 {
		return "1 session"
	}
	return fmt.Sprintf("%d sessions", n)
}

// blocksNoOne: an online DDL or maintenance wait queues no one behind it.
func blocksNoOne(inc analyze.Incident) bool {
	return inc.Kind == analyze.KindOnlineDDL || inc.Kind == analyze.KindMaintenance
}

func stallWord(inc analyze.Incident) string {
	switch inc.Kind {
	case analyze.KindRowLock:
		return "row-lock stall"
	case analyze.KindHotRow:
		return "hot-row contention"
	case analyze.KindDeadlock:
		return "deadlock"
	case analyze.KindOnlineDDL:
		return "online DDL wait"
	case analyze.KindMaintenance:
		return "maintenance wait"
	case analyze.KindAdvisory:
		return "advisory-lock queue"
	case analyze.KindDDLLockQueue:
		return "stall"
	}
	return "lock stall"
}

// chain is the incident in one line, for the chart's caption: blocker →
// DDL → the sessions stalled. id formats identifiers.
func chain(inc analyze.Incident, id func(string) string) string {
	var parts []string
	if len(inc.RootBlockers) > 0 {
		r := inc.RootBlockers[0]
		who := r.Role
		switch {
		case r.PID == 0:
			who = "prepared transaction unresolved " + human(rootAge(inc, r))
		case strings.HasPrefix(r.State, "idle in transaction"):
			who += " idle in transaction " + human(rootAge(inc, r))
		case r.State == "active":
			who += " running a query " + human(rootAge(inc, r))
		case r.State != "":
			who += " " + r.State
		}
		if d := inc.DDL; d == nil || d.PID != r.PID {
			parts = append(parts, who)
		}
	}
	stalled := len(inc.Waiters)
	if d := inc.DDL; d != nil {
		h := id(stmtHead(d))
		if d.Outcome == analyze.OutcomeHeld {
			if !stmtSeen(d) {
				h = "migration holding " + id(stmtHead(d))
			}
			h += " in an open transaction"
		} else {
			stalled--
		}
		parts = append(parts, h)
	}
	if stalled > 0 {
		parts = append(parts, fmt.Sprintf("%s stalled %s", sessions(stalled), human(inc.Duration)))
	} else {
		parts = append(parts, "waited "+human(inc.Duration)+", no one behind it")
	}
	return strings.Join(parts, " → ")
}

// summary is the incident in at most three sentences: what and how bad,
// why, how it ended.
func summary(inc analyze.Incident) string {
	var b strings.Builder
	fmt.Fprintf(&b, "For %s from %s UTC, %s waited for locks on %s (at most %d at once, %.1f waiter-seconds)",
		human(inc.Duration), inc.Start.UTC().Format("15:04:05"), sessions(len(inc.Waiters)), where(inc), inc.PeakWaiters, inc.WaiterSeconds)
	if a := saturated(inc); a != nil {
		fmt.Fprintf(&b, "; all %d %s sessions connected at the peak were among them", a.Connected, code(a.Application))
	}
	b.WriteString(". ")
	b.WriteString(cause(inc))
	b.WriteString(" ")
	b.WriteString(endingSentence(inc))
	return b.String()
}

// Summary is the incident in at most three sentences, as the post-mortem
// opens it; identifiers are Markdown code spans.
func Summary(inc analyze.Incident) string { return summary(inc) }

// saturated is the application whose every connected session waited at
// the peak (two or more), if any.
func saturated(inc analyze.Incident) *analyze.AppImpact {
	for i, a := range inc.Applications {
		if a.Connected >= 2 && a.WaitingAtPeak == a.Connected && a.Role != analyze.RoleMigration {
			return &inc.Applications[i]
		}
	}
	return nil
}

// cause is the root cause in one sentence, as conditions.
func cause(inc analyze.Incident) string {
	if dl := inc.Deadlock; dl != nil && len(inc.RootBlockers) == 0 {
		return fmt.Sprintf("%d sessions each waited for a lock the next one held, in a cycle (a deadlock) that stood at least %s.", len(dl.Members), human(dl.Stood))
	}
	if c := inc.Contention; c != nil && c.Churn && len(inc.RootBlockers) == 0 {
		return fmt.Sprintf("%d different transactions held the lock on %s in turn, each briefly, while the others queued for it: no single session was the cause.", c.ChurnHolders, code(c.Object))
	}
	if len(inc.RootBlockers) == 0 {
		return "The recording shows no root blocker."
	}
	r := inc.RootBlockers[0]
	d := inc.DDL
	holder := upperFirst(rolePhrase(r)) + ", " + stateWords(inc, r) + ", held " + locksWords(r.Locks)
	switch {
	case d != nil && inc.Kind == analyze.KindMaintenance:
		return fmt.Sprintf("%s, %s, still held %s; %s waited for it for %s: it blocked no one, but the maintenance hung.",
			upperFirst(rolePhrase(r)), stateWords(inc, r), locksWords(r.Locks), theDDL(d), human(d.Waited))
	case d != nil && blocksNoOne(inc):
		return fmt.Sprintf("%s, %s, was still open; %s waited for it to finish (an online index build waits for every older transaction) for %s: it blocked no one, but the deploy hung.",
			upperFirst(rolePhrase(r)), stateWords(inc, r), theDDL(d), human(d.Waited))
	case d != nil && d.Outcome == analyze.OutcomeHeld:
		by := "with " + code(stmtHead(d))
		if !stmtSeen(d) {
			by = "earlier in its transaction"
		}
		return fmt.Sprintf("The migration took %s %s and kept it while its transaction stayed open, so every request on %s queued behind it.",
			lockOn(d.Mode, d.Relation), by, code(d.Relation))
	case d != nil:
		how := "for " + human(d.Waited)
		if d.Attempts > 1 {
			how = fmt.Sprintf("in %d attempts (%s in all)", d.Attempts, human(d.Waited))
		}
		return fmt.Sprintf("%s; %s queued behind it %s, and every later request on %s queued behind the migration.",
			holder, theDDL(d), how, code(d.Relation))
	}
	return fmt.Sprintf("%s, and %d sessions queued behind it.", holder, r.PeakBehind)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// endingSentence says how the queue ended and what became of the change.
func endingSentence(inc analyze.Incident) string {
	if inc.End == nil {
		return "The queue had not drained when the recording ends."
	}
	var s string
	switch {
	case inc.EndedBy == analyze.EndedByWaiter && inc.DDL != nil:
		s = "It ended when the migration " + analyze.OutcomeWords(inc.DDL.Outcome)
		if len(inc.RootBlockers) > 0 && inc.RootBlockers[0].Ending == analyze.EndingKeptLocks {
			s += ", while " + subject(inc.RootBlockers[0]) + " kept its locks"
		}
	case inc.EndedBy == analyze.EndedByDeadlockDetector:
		s = "It ended when " + inc.Ending
	case len(inc.RootBlockers) > 0 && inc.RootBlockers[0].Gone != nil:
		r := inc.RootBlockers[0]
		s = fmt.Sprintf("It ended %s in, when %s %s", human(r.Gone.Sub(inc.Start).Seconds()), subject(r), analyze.EndingWords(r.Ending))
	case inc.Contention != nil && inc.Contention.Churn:
		s = "It ended when the contention did: no single session ended it"
	default:
		s = "The queue drained"
	}
	if d := inc.DDL; d != nil {
		switch inc.Runbook.Path {
		case analyze.PathFinishForward:
			if inc.Kind == analyze.KindMaintenance {
				s += "; the maintenance then got its lock"
				break
			}
			s += "; the change went through"
		case analyze.PathRollBack:
			s += "; the change did not go through"
		case analyze.PathCannotTell:
			s += "; whether the change went through, the recording cannot tell"
		}
	}
	return s + "."
}

// flows maps Odoo's hot tables to the business flows that live on them.
var flows = map[string]string{
	"stock_move":        "stock moves: pickings, receipts, deliveries, manufacturing",
	"stock_move_line":   "detailed stock operations: picking validation, barcode scanning",
	"stock_quant":       "on-hand stock and reservations",
	"account_move":      "invoices, vendor bills, journal entries",
	"account_move_line": "journal items: invoicing, payments, reconciliation, reports",
	"sale_order":        "quotations and sales orders",
	"sale_order_line":   "quotation and order lines, eCommerce carts",
	"ir_attachment":     "attachments, generated PDFs, website assets",
	"mail_message":      "chatter, messages and notifications",
	"ir_cron":           "scheduled actions",
	"bus_bus":           "live notifications (longpolling, websockets)",
}

// businessFlows lists the flows on the incident's relations.
func businessFlows(rels []string) []string {
	var out []string
	for _, r := range rels {
		bare := r
		if i := strings.LastIndexByte(r, '.'); i >= 0 {
			bare = r[i+1:]
		}
		if f, ok := flows[bare]; ok {
			out = append(out, code(r)+": "+f)
		}
	}
	return out
}

// capacity says, per application, how much of it the incident stopped.
func capacity(a analyze.AppImpact, dur float64) string {
	switch {
	case a.Connected == 0:
		return fmt.Sprintf("%d sessions waited", a.Waited)
	case a.WaitingAtPeak == a.Connected && a.Connected >= 2 && a.Role != analyze.RoleMigration:
		return fmt.Sprintf("all %d connected sessions waited at the peak: its capacity was zero", a.Connected)
	}
	return fmt.Sprintf("%d of %d connected sessions waited at the peak", a.WaitingAtPeak, a.Connected)
}

// trigger says what set the incident off: the migration session, when it
// connected and began, and when its lock request first waited.
func trigger(inc analyze.Incident) []string {
	d := inc.DDL
	if d == nil {
		if len(inc.RootBlockers) == 0 {
			return []string{"The recording does not show what set the queue off."}
		}
		r := inc.RootBlockers[0]
		out := []string{"No schema change was involved."}
		if r.XactStart != nil {
			out = append(out, fmt.Sprintf("%s began at %s; the first session queued behind it at %s.", upperFirst(rolePhrase(r)), clockOf(*r.XactStart), clockOf(inc.Start)))
		}
		return out
	}
	var out []string
	s := fmt.Sprintf("The migration session (%s", code(d.ApplicationName))
	for _, w := range inc.Waiters {
		if w.PID == d.PID && w.User != "" {
			s += ", user " + code(w.User)
		}
	}
	for _, r := range inc.RootBlockers {
		if r.PID == d.PID && r.User != "" {
			s += ", user " + code(r.User)
		}
	}
	s += fmt.Sprintf(") connected at %s", clockOf(d.BackendStart))
	if d.XactStart != nil {
		s += fmt.Sprintf(" and began its transaction at %s", clockOf(*d.XactStart))
	}
	out = append(out, s+".")
	switch {
	case d.Outcome == analyze.OutcomeHeld:
		if d.LockStatement != "" {
			out = append(out, fmt.Sprintf("It took %s with %s.", lockOn(d.Mode, d.Relation), code(oneLine(d.LockStatement, 120))))
		} else {
			out = append(out, fmt.Sprintf("It took %s with a statement no sample saw.", lockOn(d.Mode, d.Relation)))
		}
		if d.QueryNote != "" {
			out = append(out, fmt.Sprintf("When first seen holding it, it was running %s: %s.", code(oneLine(d.Query, 120)), d.QueryNote))
		}
	case d.FirstWait != nil:
		out = append(out, fmt.Sprintf("Its %s first waited for %s at %s (%s).", code(stmtHead(d)), lockOn(d.Mode, d.Relation), clockOf(*d.FirstWait), tplus(inc.Start, *d.FirstWait)))
	}
	return out
}

func lockOn(mode, rel string) string {
	w, on := lockParts(mode, rel)
	if on == "" {
		return inline(w)
	}
	return w + " on " + code(on)
}

func clockOf(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// causes are the root cause and the contributing ones, as conditions.
func causes(inc analyze.Incident) (root string, contributing []string) {
	root = cause(inc)
	d := inc.DDL
	if d != nil && d.Outcome != analyze.OutcomeHeld && d.Attempts == 1 && d.Waited > 1 && !blocksNoOne(inc) {
		contributing = append(contributing, fmt.Sprintf("The migration ran without a lock_timeout: %s waited %s, and every request on %s waited behind it.", theDDL(d), human(d.Waited), code(d.Relation)))
	}
	if d != nil && d.Outcome == analyze.OutcomeHeld {
		if d.QueryNote != "" {
			contributing = append(contributing, "The migration kept working inside the transaction that changed the schema, so the lock stayed held until its commit.")
		} else {
			contributing = append(contributing, "The migration left the transaction that changed the schema open, so the lock stayed held until its commit.")
		}
	}
	if d != nil && createIndex.MatchString(cmpStr(d.LockStatement, d.Query)) && !concurrently.MatchString(cmpStr(d.LockStatement, d.Query)) {
		contributing = append(contributing, "The index was built with a plain `CREATE INDEX`, which blocks every write for the whole build.")
	}
	for _, r := range inc.RootBlockers {
		switch {
		case d != nil && d.PID == r.PID:
		case r.Role == analyze.RoleOdooCron && d != nil:
			contributing = append(contributing, "The deploy overlapped a running cron job.")
		case r.Role == analyze.RoleBackup && d != nil:
			contributing = append(contributing, "The deploy overlapped the backup window.")
		case r.PID == 0:
			contributing = append(contributing, "A prepared transaction was left unresolved.")
		}
		if strings.HasPrefix(r.State, "idle in transaction") && (d == nil || d.PID != r.PID) {
			contributing = append(contributing, "A transaction was left idle while holding locks.")
		}
	}
	if len(inc.RootBlockers) > 0 && inc.PeakWaiters > inc.RootBlockers[0].PeakBehind {
		contributing = append(contributing, "More than one blocker was involved.")
	}
	return root, dedupe(contributing)
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func isOdoo(inc analyze.Incident) bool {
	for _, w := range inc.Waiters {
		if strings.HasPrefix(w.Role, "odoo") {
			return true
		}
	}
	for _, r := range inc.RootBlockers {
		if strings.HasPrefix(r.Role, "odoo") {
			return true
		}
	}
	return len(hotOf(inc.Relations)) > 0
}

func hotOf(rels []string) []string {
	var out []string
	for _, r := range rels {
		if slices.Contains(analyze.HotTables, r[strings.LastIndexByte(r, '.')+1:]) {
			out = append(out, r)
		}
	}
	return out
}

// mitigation is the time from the queue forming to its end, and what
// ended it.
func mitigation(inc analyze.Incident) string {
	if inc.End == nil {
		return "not mitigated within the recording"
	}
	return human(inc.End.Sub(inc.Start).Seconds()) + " (queue formed → " + inc.Ending + ")"
}

// observed lists the operator statements seen, in plain sentences.
func observed(inc analyze.Incident) []string {
	var out []string
	for _, op := range inc.Operator {
		s := fmt.Sprintf("%s (%s): pid %d (%s) ran %s", clockOf(op.At), tplus(inc.Start, op.At), op.PID, code(cmpStr(op.ApplicationName, op.User)), code(oneLine(op.Query, 120)))
		if op.PID == 0 && op.ApplicationName == analyze.GuardApplication {
			s = fmt.Sprintf("%s (%s): the capture's guard ran %s", clockOf(op.At), tplus(inc.Start, op.At), code(op.Query))
		}
		switch {
		case op.GID != "":
			s += " on prepared transaction " + code(op.GID)
		case op.Target == 0:
			s += "; whom it named is not in the recording (a bound parameter)"
		default:
			s += fmt.Sprintf(", naming pid %d", op.Target)
			for _, r := range inc.RootBlockers {
				if r.PID == op.Target {
					s += " (the root blocker)"
				}
			}
			if inc.DDL != nil && inc.DDL.PID == op.Target {
				s += " (the migration)"
			}
		}
		out = append(out, s+".")
	}
	return out
}

// versusRunbook compares what was seen done with the runbook's first step.
func versusRunbook(inc analyze.Incident) string {
	if len(inc.Actions) == 0 {
		return "The runbook prescribes no containment for this incident."
	}
	first := inc.Actions[0]
	for _, a := range inc.Actions {
		if a.Action != "leave" {
			first = a
			break
		}
	}
	s := fmt.Sprintf("The runbook's first step was to %s pid %d (%s).", first.Action, first.PID, first.Role)
	if first.GID != "" {
		s = fmt.Sprintf("The runbook's first step was to run %s.", code(first.SQL))
		for _, op := range inc.Operator {
			if op.GID == first.GID && op.Action == first.Action {
				return s + fmt.Sprintf(" That is what was done, %s after the queue formed.", human(op.At.Sub(inc.Start).Seconds()))
			}
		}
	}
	if first.Action == "leave" {
		s = fmt.Sprintf("The runbook prescribes no cancel or terminate here: it leaves pid %d (%s) to be validated first and touches the migration last.", first.PID, first.Role)
	}
	for _, op := range inc.Operator {
		if op.Target == first.PID && op.Action == first.Action {
			return s + fmt.Sprintf(" That is what was done, %s after the queue formed.", human(op.At.Sub(inc.Start).Seconds()))
		}
	}
	for _, op := range inc.Operator {
		if inc.DDL != nil && op.Target == inc.DDL.PID && op.Action == "cancel" {
			if first.Action == "leave" {
				return s + " The migration was cancelled: the runbook's roll-back path; the change did not go through."
			}
			return s + " Instead the migration was cancelled: the runbook's roll-back path, taken before clearing the blocker; the change did not go through."
		}
		if op.Target == first.PID {
			return s + fmt.Sprintf(" It was done with %s instead.", op.Action)
		}
	}
	if len(inc.Operator) == 0 {
		return s + " No such statement was seen: the queue ended without an operator's statement in the recording."
	}
	return s + " The statements seen did not name it."
}

// ActionItem is one follow-up the evidence supports.
type ActionItem struct {
	What, Why string
}

// actionItems are the follow-ups specific to the evidence: each names
// the setting or practice that would have helped, and why.
func actionItems(inc analyze.Incident) []ActionItem {
	var out []ActionItem
	d := inc.DDL
	odoo := isOdoo(inc)
	actual, lt := whatIfRow(inc, "actual"), whatIfRow(inc, "lock_timeout = 1s, retry after 1s")
	if d != nil && d.Outcome != analyze.OutcomeHeld && d.Attempts == 1 && d.Waited > 1 && !blocksNoOne(inc) {
		why := fmt.Sprintf("%s waited %s and held everyone behind it", theDDL(d), human(d.Waited))
		if actual != nil && lt != nil && lt.WaiterSeconds < actual.WaiterSeconds {
			why += fmt.Sprintf("; replayed with lock_timeout = 1s and retries, %.1f waiter-seconds instead of %.1f", lt.WaiterSeconds, actual.WaiterSeconds)
		}
		what := "Run DDL with `SET lock_timeout = '2s'` and retry on failure (squawk `require-timeout-settings`, pgroll `--lock-timeout`, GitLab `with_lock_retries`)"
		if odoo {
			what = "Run module upgrades with `PGOPTIONS='-c lock_timeout=2s' odoo-bin -u <module> --stop-after-init`, retrying on failure"
		}
		out = append(out, ActionItem{what, why})
	}
	for _, r := range inc.RootBlockers {
		switch {
		case d != nil && d.PID == r.PID:
		case r.Role == analyze.RoleOdooCron && d != nil:
			out = append(out, ActionItem{"Pause crons during upgrades: stop the cron workers (`--max-cron-threads=0`) and let running jobs finish before `odoo-bin -u`",
				"a cron job's transaction held the lock the migration needed"})
		case r.Role == analyze.RoleBackup && d != nil:
			out = append(out, ActionItem{"No deploys in the backup window: schedule migrations outside `pg_dump` runs, or check `pg_stat_activity` for one before deploying",
				"a backup's transaction held " + locksWords(r.Locks) + " for the whole dump"})
		case r.State == "active" && rootAge(inc, r) > 5:
			out = append(out, ActionItem{fmt.Sprintf("Set a `statement_timeout` below %s for the role %s (`ALTER ROLE … SET statement_timeout`)", human(rootAge(inc, r)), code(r.User)),
				fmt.Sprintf("a statement of %s ran %s while holding %s", code(r.ApplicationName), human(rootAge(inc, r)), locksWords(r.Locks))})
		}
		if strings.HasPrefix(r.State, "idle in transaction") && (d == nil || d.PID != r.PID) {
			if w := helpingIdleTimeout(inc); w != nil {
				setting := strings.TrimPrefix(w.Scenario, "idle_in_transaction_session_timeout = ")
				out = append(out, ActionItem{fmt.Sprintf("Set `idle_in_transaction_session_timeout = '%s'` for the role %s", setting, code(r.User)),
					fmt.Sprintf("the blocker sat idle in transaction; replayed with it, %.1f waiter-seconds instead of %.1f", w.WaiterSeconds, actual.WaiterSeconds)})
			}
		}
	}
	if d != nil && d.Outcome == analyze.OutcomeHeld {
		why := "the migration held " + lockOn(d.Mode, d.Relation) + " in its open transaction after the DDL"
		if d.QueryNote != "" {
			why = "the migration held " + lockOn(d.Mode, d.Relation) + " while it did other work"
		}
		out = append(out, ActionItem{"Commit right after each DDL step; do data loading in a later transaction", why})
	}
	if d != nil && createIndex.MatchString(cmpStr(d.LockStatement, d.Query)) && !concurrently.MatchString(cmpStr(d.LockStatement, d.Query)) {
		out = append(out, ActionItem{"Build indexes with `CREATE INDEX CONCURRENTLY` (outside a transaction block)", "a plain `CREATE INDEX` blocks every write while it runs"})
	}
	// The analysis's advice for the other kinds (deadlocks, hot rows,
	// advisory locks, online DDL, prepared transactions); an idle timeout
	// the replay shows would have changed nothing is left out.
	idleReplayed := false
	for _, w := range inc.WhatIf {
		idleReplayed = idleReplayed || strings.HasPrefix(w.Scenario, "idle_in_transaction_session_timeout")
	}
	haveIdle := slices.ContainsFunc(out, func(a ActionItem) bool { return strings.Contains(a.What, "idle_in_transaction_session_timeout") })
	for _, a := range inc.Advice {
		if strings.Contains(a.Advice, "idle_in_transaction_session_timeout") && !strings.Contains(a.Advice, "statement_timeout") && (haveIdle || idleReplayed && helpingIdleTimeout(inc) == nil) {
			continue
		}
		out = append(out, ActionItem{upperFirst(prose(a.Advice)), prose(a.Evidence)})
	}
	if inc.Runbook.Path == analyze.PathCannotTell && d != nil {
		out = append(out, ActionItem{fmt.Sprintf("Check whether the change reached the schema (%s, the migration's log) before running it again", code(`\d `+d.Relation)),
			"the recording cannot tell whether the change went through"})
	}
	if inc.Runbook.Path == analyze.PathRollBack && d != nil {
		out = append(out, ActionItem{"Re-run the change in a quiet window, with lock_timeout and retries", "the change did not go through"})
	}
	return out
}

func whatIfRow(inc analyze.Incident, name string) *analyze.WhatIf {
	for i := range inc.WhatIf {
		if inc.WhatIf[i].Scenario == name {
			return &inc.WhatIf[i]
		}
	}
	return nil
}

// helpingIdleTimeout is the longest replayed idle timeout that would have
// reduced the waiting, or nil when none would have.
func helpingIdleTimeout(inc analyze.Incident) *analyze.WhatIf {
	actual := whatIfRow(inc, "actual")
	if actual == nil {
		return nil
	}
	var best *analyze.WhatIf
	for i := range inc.WhatIf {
		w := &inc.WhatIf[i]
		if strings.HasPrefix(w.Scenario, "idle_in_transaction_session_timeout") && w.WaiterSeconds < actual.WaiterSeconds-0.05 {
			best = w // replays come shortest first: the last that helps is the longest
		}
	}
	return best
}

// SessionGroup is the sessions that waited, rolled up by application,
// role, lock mode and target.
type SessionGroup struct {
	Application, Role, Mode, Target string
	Sessions                        int
	MaxWait                         float64
}

func sessionGroups(ws []analyze.Session) []SessionGroup {
	var out []SessionGroup
	idx := map[[4]string]int{}
	for _, w := range ws {
		k := [4]string{analyze.SessionApplication(w), w.Role, w.Mode, w.Target}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, SessionGroup{Application: k[0], Role: k[1], Mode: k[2], Target: k[3]})
		}
		out[i].Sessions++
		out[i].MaxWait = max(out[i].MaxWait, w.WaitedFor)
	}
	return out
}
