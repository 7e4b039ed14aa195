//! The connection interface every index query goes through, with its two backends:
//! SQLite (rusqlite, the embedded default) and PostgreSQL (the sync `postgres` client).
//!
//! One SQL text serves both (see the module docs of [`crate::index`] for the common
//! subset): statements are written with SQLite's `?N` / `?` placeholders, which
//! [`dialect::render`] turns into PostgreSQL's `$N` once per statement and connection
//! (cached with the prepared statement), so the SQLite path runs the text as written.
//! Values are bound borrowed ([`Param`]) and read back through [`Row::get`], which
//! reads PostgreSQL's 2-, 4- and 8-byte integers alike, so `SELECT 1` or `count(*)`
//! need no casts.

pub(crate) mod dialect;
pub(crate) mod pg;

use crate::error::{Error, Result};

/// A value bound to a search condition (owned: conditions are built before a
/// connection is at hand).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (SQLite INTEGER, PostgreSQL BIGINT).
    Integer(i64),
    /// UTF-8 text.
    Text(String),
}

/// A value bound to a statement, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> From<&'a Value> for Param<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Param::Null,
            Value::Integer(i) => Param::Int(*i),
            Value::Text(s) => Param::Text(s),
        }
    }
}
impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}
impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}
macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl From<$t> for Param<'_> {
            fn from(v: $t) -> Self {
                Param::Int(i64::from(v))
            }
        }
    )*};
}
int_param!(i32, u32, u16, u8);

/// `&[Param]` from a list of values of mixed types.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::index::db::Param::from($v)),*][..]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(i) => ValueRef::Integer(i),
            Param::Text(s) => ValueRef::Text(s.as_bytes()),
            Param::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A row being read: the column accessors of either backend.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` (0-based) as `T`.
    pub(crate) fn get<T: Column>(&self, i: usize) -> Result<T> {
        match self {
            Row::Sqlite(r) => Ok(T::sqlite(r, i)?),
            Row::Pg(r) => T::pg(r, i),
        }
    }
}

/// A Rust type a column is read as.
pub(crate) trait Column: Sized {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    fn pg(r: &postgres::Row, i: usize) -> Result<Self>;
}

impl Column for Option<i64> {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        use postgres::types::Type;
        let ty = r.columns().get(i).map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT2) => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
            Some(Type::INT4) => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
            Some(Type::BOOL) => r.try_get::<_, Option<bool>>(i)?.map(i64::from),
            _ => r.try_get::<_, Option<i64>>(i)?,
        })
    }
}
impl Column for i64 {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Option::<i64>::pg(r, i)?
            .ok_or_else(|| Error::internal(format!("index: column {i} is NULL")))
    }
}
impl Column for u32 {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        u32::try_from(i64::pg(r, i)?)
            .map_err(|_| Error::internal(format!("index: column {i} is out of range")))
    }
}
impl Column for Option<String> {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}
impl Column for String {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}
impl Column for Vec<u8> {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}

/// One connection to the index, of either backend. Every query of the index goes
/// through these methods; only connection handling, DDL and [`dialect`] differ.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    // Boxed: a pooled client is four times the size of an SQLite connection, which
    // moves in and out of the reader pool on every read.
    Pg(Box<pg::Pooled>),
}

impl Db {
    /// Runs a statement; returns the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        match self {
            Db::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))? as u64)
            }
            Db::Pg(c) => c.execute(sql, params),
        }
    }

    /// Every row of a query, each mapped by `f`.
    pub(crate) fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r))?);
                }
                Ok(out)
            }
            Db::Pg(c) => c
                .query(sql, params)?
                .iter()
                .map(|r| f(&Row::Pg(r)))
                .collect(),
        }
    }

    /// The first row of a query mapped by `f`, if there is one.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Sqlite(r))?)),
                    None => Ok(None),
                }
            }
            Db::Pg(c) => match c.query(sql, params)?.first() {
                Some(r) => Ok(Some(f(&Row::Pg(r))?)),
                None => Ok(None),
            },
        }
    }

    /// The first row of a query that always answers one (an aggregate, `RETURNING`).
    pub(crate) fn query_one<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| Error::internal("index: a query that answers one row answered none"))
    }

    /// Whether a query answers any row.
    pub(crate) fn exists(&mut self, sql: &str, params: &[Param<'_>]) -> Result<bool> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }

    /// Runs several statements without parameters (DDL).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(c) => c.batch(sql),
        }
    }

    /// Starts a transaction; `snapshot` asks for a read-only one with one view of the
    /// data across its statements (SQLite's read transactions always have one;
    /// PostgreSQL needs REPEATABLE READ for it). Otherwise the transaction writes: on
    /// SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), waiting for another
    /// process's write transaction within the busy timeout. A deferred one would read
    /// first and then fail at once with "database is locked" when it came to write
    /// while another process wrote: SQLite does not wait to upgrade a read
    /// transaction, since the other writer may be waiting for it.
    pub(crate) fn begin(&mut self, snapshot: bool) -> Result<Tx<'_>> {
        match self {
            Db::Sqlite(_) if snapshot => self.batch("BEGIN")?,
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE")?,
            Db::Pg(_) if snapshot => {
                self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?
            }
            Db::Pg(_) => self.batch("BEGIN")?,
        }
        Ok(Tx {
            db: self,
            open: true,
        })
    }

    /// Which backend this is.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

/// An open transaction: rolled back when dropped without [`Tx::commit`] (an error or a
/// cancelled run), so a failure never leaves half a batch.
pub(crate) struct Tx<'c> {
    db: &'c mut Db,
    open: bool,
}

impl Tx<'_> {
    /// Commits.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.open = false;
        self.db.batch("COMMIT")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}
impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // A failed rollback leaves nothing to do: the connection is dropped with
            // its transaction (SQLite) or discarded as broken by the pool (PostgreSQL).
            let _ = self.db.batch("ROLLBACK");
        }
    }
}
