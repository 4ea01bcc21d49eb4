//! How an engine computes a column default for the rows a table already has: one value for all of
//! them (a literal, or a function the engine evaluates once per statement) or one per row. That
//! decides whether adding the column only edits the catalog or writes every row.
//!
//! The engines differ. PostgreSQL evaluates `random()` per row (a rewrite), while MariaDB
//! evaluates `rand()` once and adds the column instantly; MariaDB copies the table for `uuid()`,
//! `sysdate()` and `utc_timestamp()`. The MariaDB lists below are checked against the real server
//! by tests/default_volatility.rs::mariadb_defaults_are_classified_as_the_server_adds_them. A
//! function not known counts as per row: the safe assumption.

use super::{Engine, Volatility};
use sqlparser::ast::Expr;

/// Time functions PostgreSQL and MySQL evaluate once per statement.
pub const ONCE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "transaction_timestamp",
    "statement_timestamp",
    "curdate",
    "curtime",
    "utc_timestamp",
];

/// Functions MariaDB 10.4+ evaluates once when it adds a column with `ALGORITHM=INSTANT`
/// (probed on 10.11: every existing row reads one value).
pub const MARIADB_ONCE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "curdate",
    "curtime",
    "utc_date",
    "utc_time",
    "unix_timestamp",
    "rand",
    "user",
    "current_user",
    "database",
    "connection_id",
    "version",
    "pi",
    "concat",
    "lower",
    "upper",
    "md5",
    "round",
    "coalesce",
    "ifnull",
];

/// Functions MariaDB evaluates per existing row (`ALGORITHM=COPY`; probed on 10.11). Listed so
/// that the docs and the probe test name them; any function outside [`MARIADB_ONCE`] counts as
/// per row anyway.
pub const MARIADB_PER_ROW: &[&str] = &[
    "uuid",
    "uuid_short",
    "sys_guid",
    "sysdate",
    "utc_timestamp",
    "random_bytes",
    "nextval",
];

/// How `engine` computes the default `e` for existing rows.
pub fn of(e: &Expr, engine: Engine) -> Volatility {
    match e {
        Expr::Value(_) | Expr::TypedString { .. } => Volatility::Constant,
        Expr::Identifier(i) => match i.value.to_ascii_lowercase().as_str() {
            "current_timestamp" | "current_date" | "current_time" | "localtimestamp"
            | "localtime" => Volatility::Stable,
            _ => Volatility::Constant,
        },
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
            of(expr, engine)
        }
        Expr::BinaryOp { left, right, .. } => of(left, engine).max(of(right, engine)),
        Expr::Array(a) => a
            .elem
            .iter()
            .map(|e| of(e, engine))
            .max()
            .unwrap_or(Volatility::Constant),
        Expr::Function(f) => {
            let n = f.name.to_string().to_ascii_lowercase();
            let n = n.rsplit('.').next().unwrap_or(&n).trim_matches(['"', '`']);
            let once = if engine == Engine::Mariadb {
                MARIADB_ONCE
            } else {
                ONCE
            };
            if once.contains(&n) && arguments(f).all(|a| of(a, engine) != Volatility::Volatile) {
                Volatility::Stable
            } else {
                Volatility::Volatile
            }
        }
        _ => Volatility::Volatile,
    }
}

/// The plain argument expressions of a function call.
fn arguments(f: &sqlparser::ast::Function) -> impl Iterator<Item = &Expr> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let list = match &f.args {
        FunctionArguments::List(l) => l.args.as_slice(),
        _ => &[],
    };
    list.iter().filter_map(|a| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    })
}

impl PartialOrd for Volatility {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Volatility {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |v: &Volatility| match v {
            Volatility::Constant => 0,
            Volatility::Stable => 1,
            Volatility::Volatile => 2,
        };
        rank(self).cmp(&rank(other))
    }
}
