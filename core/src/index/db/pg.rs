//! The PostgreSQL backend's connections: a pool (r2d2) of sync `postgres` clients,
//! each with its prepared statements, and the mapping of its errors.
//!
//! The sync client drives its socket on a private single-thread tokio runtime and
//! blocks the calling thread; called from a thread of another tokio runtime it would
//! panic ("cannot start a runtime from within a runtime"). [`off_runtime`] moves such a
//! call to a plain thread, so a host that forgets `spawn_blocking` gets an answer, not a
//! crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};

use super::dialect::render_placeholders;
use super::{Db, Param};
use crate::error::{Error, ErrorKind, Result};

/// Most prepared statements kept per connection (searches build their SQL from the
/// query; the same shapes recur).
const MAX_STATEMENTS: usize = 256;

/// Longest wait for a connection when every connection is lent out and the database is
/// reachable (a burst of requests larger than the pool): then a request queues for a
/// connection instead of failing.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Longest wait for a connection once the last attempt to open one failed (the server
/// is down, restarting or refusing connections): a request is answered 503 after this
/// instead of holding its thread for [`POOL_WAIT`] while nothing can succeed.
const OUTAGE_WAIT: Duration = Duration::from_millis(250);

/// Time for the server to accept a connection (TCP handshake, TLS, startup message) when
/// the URL sets no `connect_timeout`: bounds a request's wait when the database host
/// stops answering altogether (a network cut), where no connection error comes back.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client and its prepared statements, keyed by the SQL as written (SQLite's
/// placeholders), so the rendering to `$N` happens once per statement.
pub(crate) struct PgClient {
    client: Client,
    statements: HashMap<String, Statement>,
    /// A query failed in a way that ends the session (the server terminated it, the
    /// socket failed): the pool drops the client instead of lending it again. The
    /// client's own `is_closed` learns it only once its socket is polled again.
    broken: bool,
    /// Statements answered on this connection since it was opened: a connection that
    /// breaks before answering any statement of a checkout had died while idle.
    answered: u64,
}

/// A connection checked out of the pool (returned to it when dropped).
pub(crate) type Pooled = r2d2::PooledConnection<Manager>;

/// Opens connections for the pool, and remembers whether the last attempt failed.
#[derive(Debug)]
pub(crate) struct Manager {
    config: postgres::Config,
    reach: Arc<AtomicBool>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgClient;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<PgClient, postgres::Error> {
        let client = self.config.connect(NoTls);
        // Relaxed: a stale view costs one request a longer or shorter wait, never a
        // wrong answer.
        self.reach.store(client.is_ok(), Ordering::Relaxed);
        Ok(PgClient {
            client: client?,
            statements: HashMap::new(),
            broken: false,
            answered: 0,
        })
    }

    fn is_valid(&self, c: &mut PgClient) -> std::result::Result<(), postgres::Error> {
        c.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, c: &mut PgClient) -> bool {
        c.broken || c.client.is_closed()
    }
}

/// The pool of an index on PostgreSQL: an r2d2 pool, and whether the database took the
/// last connection attempt (shared with the pool's [`Manager`]).
pub(crate) struct Pool {
    pool: r2d2::Pool<Manager>,
    reachable: Arc<AtomicBool>,
}

/// A pool of at most `max_connections` connections to the database at `url`
/// (`postgres://user@host:port/db?options=...`, or the key=value form). Connections
/// are opened when first needed; one is opened (and closed) here, so a wrong URL or a
/// database that is down fails at open.
///
/// Waits are bounded: opening a connection takes at most the URL's `connect_timeout`
/// ([`DEFAULT_CONNECT_TIMEOUT`], 5 s, when it sets none); see [`checkout`] for the
/// wait for a connection.
pub(crate) fn pool(url: &str, max_connections: u32) -> Result<Pool> {
    let mut config: postgres::Config = url.parse().map_err(|e| {
        Error::new(ErrorKind::Config, "the index URL is not a PostgreSQL URL")
            .with_detail(format!("index url: {e}"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    // A host whose database vanished (network cut, failover) learns it from the kernel
    // within a minute instead of waiting on a dead socket.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("sia");
    }
    let reachable = Arc::new(AtomicBool::new(true));
    let manager = Manager {
        config,
        reach: Arc::clone(&reachable),
    };
    // The first connection directly, so a wrong address or password is reported as
    // what it is, at once, instead of after the pool's wait for a connection.
    let first = r2d2::ManageConnection::connect(&manager)?;
    let pool = r2d2::Pool::builder()
        .max_size(max_connections.max(1))
        .min_idle(Some(0))
        // The pool's own check (an empty query per checkout) would double the round
        // trips of a short search; a broken client is found by `is_closed` instead, and
        // a connection that died while idle is replaced by `with_connection`.
        .test_on_check_out(false)
        // r2d2 retries a failed connection attempt in the background, backing off up to
        // half this: while the database is down, every second or so, so a host is back
        // within about a second of the database. `checkout` does its own waiting.
        .connection_timeout(Duration::from_secs(2))
        // Each failed attempt is an answer's detail already (the host logs it); r2d2's
        // own log line per retry would repeat it every second per pending connection.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(manager);
    drop(first);
    Ok(Pool { pool, reachable })
}

/// A connection from `pool`: an idle one, a new one, or one returned by another request
/// within [`POOL_WAIT`] (10 s) while the database is reachable. Once an attempt to open
/// a connection has failed, the wait is [`OUTAGE_WAIT`] (250 ms) instead, so that during
/// an outage every request is answered at once (after at most the connect timeout when
/// the server does not answer at all); the first connection the pool opens again ends
/// the outage. Unavailable (503, `Retry-After: 1`) when no connection can be had.
pub(crate) fn checkout(pool: &Pool) -> Result<Pooled> {
    let deadline = Instant::now() + POOL_WAIT;
    loop {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(OUTAGE_WAIT);
        match pool.pool.get_timeout(wait) {
            Ok(c) => return Ok(c),
            Err(e) if !pool.reachable.load(Ordering::Relaxed) || Instant::now() >= deadline => {
                return Err(pool_error(e));
            }
            Err(_) => continue,
        }
    }
}

/// Runs `f` on a connection from `pool`. A connection that the server ended while it sat
/// idle in the pool (a database restart, a failover, an idle-session timeout, an
/// administrator's `pg_terminate_backend`) fails at its first statement; `f` then runs
/// again on another connection, so clients do not see one 503 per stale connection
/// after the database is back. Only such a failure is retried: once a statement has
/// answered, `f` may have changed the index and its error is returned. At most one
/// retry per connection the pool can hold, so a pool of dead connections is drained
/// within one call.
pub(crate) fn with_connection<R>(
    pool: &Pool,
    mut f: impl FnMut(&mut Db) -> Result<R>,
) -> Result<R> {
    let mut retries = pool.pool.max_size();
    loop {
        let mut db = Db::Pg(Box::new(checkout(pool)?));
        let before = answered(&db);
        let out = f(&mut db);
        let died_idle = matches!(&db, Db::Pg(c) if c.broken) && answered(&db) == before;
        match out {
            Err(_) if died_idle && retries > 0 => retries -= 1,
            out => return out,
        }
    }
}

fn answered(db: &Db) -> u64 {
    match db {
        Db::Pg(c) => c.answered,
        Db::Sqlite(_) => 0,
    }
}

fn pool_error(e: r2d2::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "the index database is unavailable; try again",
    )
    .with_detail(format!("index: {e}"))
    .with_retry_after(1)
}

/// Runs `f` where the sync client may block: here, or on a scoped plain thread when
/// this thread belongs to a tokio runtime.
pub(crate) fn off_runtime<R: Send>(f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(Error::internal("an index query panicked")))
    })
}

impl PgClient {
    /// `e` as the engine's error, marking this client broken when it ended the session.
    fn failed(&mut self, e: postgres::Error) -> Error {
        let e = Error::from(e);
        if e.kind() == ErrorKind::Unavailable {
            self.broken = true;
        }
        e
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = match self.client.prepare(&render_placeholders(sql)) {
            Ok(s) => s,
            Err(e) => return Err(self.failed(e)),
        };
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let s = self.statement(sql)?;
        let n = self
            .client
            .execute(&s, &refs(params))
            .map_err(|e| self.failed(e))?;
        self.answered += 1;
        Ok(n)
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<postgres::Row>> {
        let s = self.statement(sql)?;
        let rows = self
            .client
            .query(&s, &refs(params))
            .map_err(|e| self.failed(e))?;
        self.answered += 1;
        Ok(rows)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(|e| self.failed(e))?;
        self.answered += 1;
        Ok(())
    }
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => i.to_sql(ty, out),
            Param::Text(s) => s.to_sql(ty, out),
            Param::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql_checked`, against the variant's own type.
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => i.to_sql_checked(ty, out),
            Param::Text(s) => s.to_sql_checked(ty, out),
            Param::Blob(b) => b.to_sql_checked(ty, out),
        }
    }
}

/// A lost connection, a server shutting down or refusing connections, and a
/// transaction the server aborted to break a deadlock or a serialization conflict are
/// Unavailable (503: try again); anything else is internal. The server's text goes to
/// the detail only.
#[doc(hidden)]
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        let code = e.code().map(|c| c.code().to_string());
        let transient = e.is_closed()
            || match code.as_deref() {
                Some(c) => {
                    c.starts_with("08")
                        || c.starts_with("57P")
                        || matches!(c, "53300" | "40001" | "40P01")
                }
                // No SQLSTATE: the socket failed (an I/O error underneath), or the
                // connection could not be made or timed out (tokio-postgres names
                // those kinds only in its message).
                None => {
                    std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
                        || ["connect", "timeout", "timed out"]
                            .iter()
                            .any(|w| e.to_string().contains(w))
                }
            };
        if transient {
            Error::new(
                ErrorKind::Unavailable,
                "the index database is unavailable; try again",
            )
            .with_detail(format!("index: {e}"))
            .with_retry_after(1)
        } else {
            Error::new(ErrorKind::Internal, crate::error::INTERNAL_ERROR)
                .with_detail(format!("index: {e}"))
        }
    }
}
