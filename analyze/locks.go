package analyze

import (
	"strconv"
	"strings"

	"github.com/lockscope/lockscope/capture/recording"
)

// Lock modes, weakest first, as pg_locks names them.
const (
	AccessShare = iota
	RowShare
	RowExclusive
	ShareUpdateExclusive
	Share
	ShareRowExclusive
	Exclusive
	AccessExclusive
	numModes
)

var modeNames = [numModes]string{
	"AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
	"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock",
}

// modeOf returns the index of a pg_locks mode name, or -1 for modes outside
// the table-level matrix (SIReadLock of serializable transactions).
func modeOf(name string) int {
	for i, n := range modeNames {
		if n == name {
			return i
		}
	}
	return -1
}

// conflicts[requested] is the set of held modes it conflicts with
// (PostgreSQL docs, "Explicit Locking", table-level lock modes).
var conflicts = func() [numModes][numModes]bool {
	var m [numModes][numModes]bool
	set := func(req int, held ...int) {
		for _, h := range held {
			m[req][h] = true
		}
	}
	set(AccessShare, AccessExclusive)
	set(RowShare, Exclusive, AccessExclusive)
	set(RowExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive)
	set(ShareUpdateExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive)
	set(Share, RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive)
	set(ShareRowExclusive, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive)
	set(Exclusive, RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive)
	set(AccessExclusive, AccessShare, RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive)
	return m
}()

// Conflicts reports whether a request for mode req conflicts with a lock
// held (or requested earlier) in mode held. Unknown modes never conflict.
func Conflicts(req, held string) bool {
	r, h := modeOf(req), modeOf(held)
	return r >= 0 && h >= 0 && conflicts[r][h]
}

// strongMode reports whether a relation lock in this mode blocks ordinary
// writes (it conflicts with RowExclusiveLock): the locks DDL takes —
// ALTER TABLE, DROP, TRUNCATE, VACUUM FULL (AccessExclusive), CREATE
// INDEX (Share), CREATE TRIGGER (ShareRowExclusive), REFRESH MATERIALIZED
// VIEW (Exclusive).
func strongMode(mode string) bool {
	m := modeOf(mode)
	return m >= Share
}

// tag identifies a lockable object: every lock-tag column of pg_locks,
// compared NULL-safely (a NULL and a 0 differ).
type tag struct {
	locktype      string
	database      int64 // -1 for NULL
	relation      int64
	page          int64 // -1 for NULL
	tuple         int32
	virtualxid    string
	transactionid int64
	classid       int64 // -1 for NULL
	objid         int64 // -1 for NULL
	objsubid      int32 // -1 for NULL
}

func tagOf(l *recording.Lock) tag {
	t := tag{locktype: l.LockType, database: -1, relation: l.Relation, page: -1, tuple: l.Tuple,
		virtualxid: l.VirtualXID, transactionid: l.TransactionID, classid: -1, objid: -1, objsubid: -1}
	if l.Database != nil {
		t.database = *l.Database
	}
	if l.Page != nil {
		t.page = int64(*l.Page)
	}
	if l.ClassID != nil {
		t.classid = *l.ClassID
	}
	if l.ObjID != nil {
		t.objid = *l.ObjID
	}
	if l.ObjSubID != nil {
		t.objsubid = *l.ObjSubID
	}
	return t
}

// String describes the locked object for people.
func (t tag) describe(rels map[int64]string) string {
	switch t.locktype {
	case "relation":
		return relName(rels, t.relation)
	case "tuple":
		return "row (" + strconv.FormatInt(t.page, 10) + "," + strconv.Itoa(int(t.tuple)) + ") of " + relName(rels, t.relation)
	case "transactionid":
		return "transaction " + strconv.FormatInt(t.transactionid, 10)
	case "virtualxid":
		return "virtual transaction " + t.virtualxid
	case "advisory":
		return advisoryKey(t)
	}
	var b strings.Builder
	b.WriteString(t.locktype)
	if t.relation != 0 {
		b.WriteString(" on " + relName(rels, t.relation))
	}
	return b.String()
}

func relName(rels map[int64]string, oid int64) string {
	if n, ok := rels[oid]; ok {
		return n
	}
	return "relation " + strconv.FormatInt(oid, 10)
}

// advisoryKey names an advisory lock by the key the application passed:
// a bigint key (objsubid 1) has its high and low halves in classid and
// objid; two int4 keys (objsubid 2) are classid and objid.
func advisoryKey(t tag) string {
	switch t.objsubid {
	case 1:
		return "advisory lock key " + strconv.FormatInt(int64(uint64(t.classid)<<32|uint64(uint32(t.objid))), 10)
	case 2:
		return "advisory lock key (" + strconv.FormatInt(int64(int32(uint32(t.classid))), 10) + ", " + strconv.FormatInt(int64(int32(uint32(t.objid))), 10) + ")"
	}
	return "advisory lock " + strconv.FormatInt(t.classid, 10) + ":" + strconv.FormatInt(t.objid, 10)
}
