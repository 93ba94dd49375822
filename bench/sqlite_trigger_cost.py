#!/usr/bin/env python3
"""What the SQLite outbox's update trigger costs a priority shift (docs/benchmarks.md, 2026-12-08).

One 2,000-row shift UPDATE per transaction (the store's statement and schema, read from
src/campaign/sqlite_schema_internal.h), 100 per run, best of 4 runs of CPU time, for each trigger
variant: none (no capture triggers), of (a trigger that does not fire), const (fires, constant
condition), seq / seqb / seqbc (shift_seq checks), cur (the store's current kShiftSkip).

  python3 bench/sqlite_trigger_cost.py [variant ...]     (work files in a new temp dir)
"""
import os, re, sqlite3, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(HERE, '..', 'src', 'campaign', 'sqlite_schema_internal.h')).read()
WORK = tempfile.mkdtemp(prefix='trigger-cost-')
def raw(name):
    m = re.search(r'inline constexpr char %s\[\] = R"sql\((.*?)\)sql";' % name, src, re.S)
    return m.group(1)
tables = raw('kCreateTables'); outbox = raw('kCreateOutbox'); skip = raw('kShiftSkip')
def setup(path, variant):
    if os.path.exists(path): os.remove(path)
    for s in ('-wal','-shm'):
        if os.path.exists(path+s): os.remove(path+s)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=NORMAL')
    db.executescript(tables)
    db.execute("ALTER TABLE txn_context ADD COLUMN shift_seq INTEGER NOT NULL DEFAULT 0")
    if variant != 'none':
        o = outbox
        if variant == 'cur': o = o.replace('@SHIFT_SKIP@', skip)
        elif variant == 'seq': o = o.replace('@SHIFT_SKIP@', 'WHEN (SELECT shift_seq FROM txn_context WHERE id = 1) = 0')
        elif variant == 'seqb': o = o.replace('@SHIFT_SKIP@', 'WHEN (SELECT shift_seq FROM txn_context WHERE id = 1) = 0 OR EXISTS (SELECT 1 FROM capture_baseline AS b WHERE b.id = NEW.id)')
        elif variant == 'seqbc': o = o.replace('@SHIFT_SKIP@', 'WHEN NOT (NEW.version = OLD.version + 1 AND NEW.id = OLD.id AND NEW.customer_id = OLD.customer_id AND (SELECT shift_seq FROM txn_context WHERE id = 1) > 0 AND NOT EXISTS (SELECT 1 FROM capture_baseline AS b WHERE b.id = NEW.id))')
        elif variant == 'const': o = o.replace('@SHIFT_SKIP@', "WHEN NEW.updated_by <> 'shifter'")
        elif variant == 'of': o = o.replace('AFTER UPDATE ON campaigns @SHIFT_SKIP@', 'AFTER UPDATE OF name ON campaigns')
        db.executescript(o)
    body = 'x'*600
    db.execute('BEGIN')
    for i in range(2000):
        db.execute("INSERT INTO campaigns VALUES (?,1,?,'active',?,'e','s',NULL,NULL,0,?,1,0,0,'a')", (i+1, 'n%d'%i, i+1, body))
    for i in range(2000):
        db.execute("INSERT INTO campaigns VALUES (?,?,?,'active',?,'e','s',NULL,NULL,0,?,1,0,0,'a')", (10000+i, 2+i//10, 'n', i%10+1, body))
    db.execute('COMMIT')
    return db
def run(db, n, variant):
    t0 = time.process_time()
    for k in range(n):
        db.execute('BEGIN IMMEDIATE')
        db.execute("UPDATE txn_context SET txn_id = txn_id + 1, commit_us = commit_us+1 WHERE id = 1")
        if variant in ('cur','seq','const','seqb','seqbc'):
            seq = db.execute("INSERT INTO outbox (txn_id, commit_us, op, actor, version, campaign_id, customer_id, name, status, priority, trigger_event, audience_segment, start_at, end_at, frequency_cap, content, row_version, created_at, updated_at, updated_by) SELECT txn_id, commit_us, 'shifted', 'shifter', -1, 0, 1, '', '', 1, '', '', NULL, NULL, 0, '', 0, commit_us, commit_us, 'shifter' FROM txn_context RETURNING seq").fetchone()[0]
            db.execute("UPDATE txn_context SET shift_seq = ? WHERE id = 1", (seq,))
        db.execute("UPDATE campaigns SET priority = priority + 1, version = version + 1, updated_at = (SELECT commit_us FROM txn_context), updated_by = 'shifter' WHERE customer_id = 1 AND priority >= 1 RETURNING id, version").fetchall()
        if variant in ('cur','seq','const','seqb','seqbc'):
            db.execute("UPDATE txn_context SET shift_seq = 0 WHERE id = 1")
        db.execute('COMMIT')
    return time.process_time() - t0
variants = sys.argv[1:] or ['none', 'of', 'const', 'seq', 'seqb', 'cur']
res = {}
for rep in range(4):
    for v in variants:
        db = setup(os.path.join(WORK, 't_%s.db' % v), v)
        res.setdefault(v, []).append(run(db, 100, v))
        db.close()
for v in variants:
    print(v, ['%.3f' % x for x in res[v]], 'per row us %.2f' % (min(res[v])/100/2000*1e6))
