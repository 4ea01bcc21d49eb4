//! Catalog reads: the table to migrate (columns, key, triggers), a referenced table's key, and the
//! functions a stored parse tree calls.

use super::rules::{PgReference, qualified};
use super::{Postgres, STATE_SCHEMA};
use crate::engine::{Column, TableSchema, Trigger};
use crate::error::{Error, Result};
use crate::spec::AddColumn;

impl Postgres {
    /// Finds a table (or other relation) by name in the search path: exact name first, then the
    /// name as PostgreSQL folds an unquoted identifier. (oid, schema, name, relkind)
    fn find_relation(&mut self, name: &str) -> Result<Option<(u32, String, String, String)>> {
        for candidate in [name.to_string(), name.to_lowercase()] {
            let row = self
                .client
                .query_opt(
                    "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
                     FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     JOIN unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS s(nsp, pos)
                       ON s.nsp = n.nspname
                     WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     ORDER BY s.pos LIMIT 1",
                    &[&candidate],
                )
                .map_err(|e| self.db_err("reading the catalog", &e))?;
            if let Some(r) = row {
                return Ok(Some((r.get(0), r.get(1), r.get(2), r.get(3))));
            }
        }
        Ok(None)
    }

    /// Reads the table's schema from the catalog; returns it with its schema name and oid.
    pub fn table_schema(&mut self, table: &str) -> Result<(TableSchema, String, u32)> {
        let Some((oid, nsp, name, kind)) = self.find_relation(table)? else {
            let rows = self
                .client
                .query(
                    "SELECT c.relname::text FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (pg_catalog.current_schemas(false))
                     ORDER BY 1 LIMIT 50",
                    &[],
                )
                .map_err(|e| self.db_err("listing tables", &e))?;
            let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let path: String = self
                .client
                .query_one(
                    "SELECT array_to_string(pg_catalog.current_schemas(false), ', ')",
                    &[],
                )
                .map(|r| r.get(0))
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "table `{table}` not found in the search path ({path}) of {}; its tables are: {}",
                self.target.label,
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )));
        };
        match kind.as_str() {
            "r" => {}
            "p" => {
                return Err(Error::Refused(format!(
                    "`{nsp}.{name}` is a partitioned table; zerodown does not migrate partitioned tables yet"
                )));
            }
            "v" | "m" => {
                return Err(Error::Refused(format!(
                    "`{nsp}.{name}` is a view; zerodown adds columns to tables"
                )));
            }
            _ => {
                return Err(Error::Refused(format!(
                    "`{nsp}.{name}` is a foreign table; zerodown adds columns to ordinary tables"
                )));
            }
        }
        if nsp == STATE_SCHEMA {
            return Err(Error::Refused(format!(
                "`{nsp}.{name}` is zerodown's own table"
            )));
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                        pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                        coalesce(pg_catalog.array_position(pk.conkey, a.attnum), 0)::int4
                 FROM pg_catalog.pg_attribute a
                 LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[&oid],
            )
            .map_err(|e| self.db_err("reading columns", &e))?;
        let columns: Vec<Column> = rows
            .iter()
            .map(|r| Column {
                name: r.get(0),
                data_type: r.get(1),
                not_null: r.get(2),
                default: r.get(3),
                pk: r.get::<_, i32>(4) as u32,
            })
            .collect();
        let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key: Vec<String> = if !pk.is_empty() {
            pk.iter().map(|c| c.name.clone()).collect()
        } else {
            // A unique, valid, non-partial index on plain NOT NULL columns orders rows just as well.
            let row = self
                .client
                .query_opt(
                    "SELECT ARRAY(SELECT a.attname::text
                                  FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                  WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
                     FROM pg_catalog.pg_index i
                     WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid
                       AND i.indpred IS NULL AND i.indexprs IS NULL
                       AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) AS k(attnum)
                                       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                       WHERE NOT a.attnotnull)
                     ORDER BY i.indnkeyatts, i.indexrelid LIMIT 1",
                    &[&oid],
                )
                .map_err(|e| self.db_err("reading indexes", &e))?;
            match row {
                Some(r) => r.get(0),
                None => {
                    return Err(Error::Refused(format!(
                        "table `{nsp}.{name}` has neither a primary key nor a unique index on NOT NULL columns, so zerodown cannot walk it in batches (nor can it find rows again after a crash); add one first, e.g. ALTER TABLE {} ADD PRIMARY KEY (id)",
                        qualified(&nsp, &name)
                    )));
                }
            }
        };
        let rows = self
            .client
            .query(
                "SELECT tgname::text, tgtype::int4 FROM pg_catalog.pg_trigger
                 WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname",
                &[&oid],
            )
            .map_err(|e| self.db_err("reading triggers", &e))?;
        let mut triggers = Vec::new();
        for r in &rows {
            let tgname: String = r.get(0);
            if tgname.starts_with("zd_") {
                continue;
            }
            let tgtype: i32 = r.get(1);
            for (bit, event) in [(4, "INSERT"), (8, "DELETE"), (16, "UPDATE")] {
                if tgtype & bit != 0 {
                    triggers.push(Trigger {
                        name: tgname.clone(),
                        event: event.into(),
                    });
                }
            }
        }
        Ok((
            TableSchema {
                name,
                columns,
                key,
                strict: false,
                triggers,
            },
            nsp,
            oid,
        ))
    }

    /// Resolves `references` to (schema, table, column) and checks the target is unique.
    pub(super) fn resolve_reference(&mut self, add: &AddColumn) -> Result<Option<PgReference>> {
        let Some(r) = &add.references else {
            return Ok(None);
        };
        let Some((oid, nsp, name, kind)) = self.find_relation(&r.table)? else {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: table `{}` not found; create it first",
                r.table
            )));
        };
        if kind != "r" && kind != "p" {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: `{nsp}.{name}` is not a table"
            )));
        }
        let column: String = match &r.column {
            Some(c) => {
                let found = self
                    .client
                    .query_opt(
                        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
                         AND (attname = $2 OR attname = lower($2)) ORDER BY attname = $2 DESC LIMIT 1",
                        &[&oid, c],
                    )
                    .map_err(|e| self.db_err("reading the referenced table", &e))?;
                match found {
                    Some(row) => row.get(0),
                    None => {
                        return Err(Error::Refused(format!(
                            "`references = \"{r}\"`: table `{nsp}.{name}` has no column `{c}`"
                        )));
                    }
                }
            }
            None => {
                let rows = self
                    .client
                    .query(
                        "SELECT a.attname::text FROM pg_constraint k
                         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                         WHERE k.conrelid = $1 AND k.contype = 'p'",
                        &[&oid],
                    )
                    .map_err(|e| self.db_err("reading the referenced table", &e))?;
                if rows.len() != 1 {
                    return Err(Error::Refused(format!(
                        "`references = \"{r}\"`: table `{nsp}.{name}` has no single-column primary key; name the column, as `{name}(id)`"
                    )));
                }
                rows[0].get(0)
            }
        };
        let unique: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                   WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                     AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND a.attname = $2
                     AND a.attnum = i.indkey[0])",
                &[&oid, &column],
            )
            .map_err(|e| self.db_err("reading the referenced table's indexes", &e))?
            .get(0);
        if !unique {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: `{nsp}.{name}`.`{column}` is neither the primary key nor UNIQUE, so PostgreSQL cannot reference it; add a unique constraint on it first"
            )));
        }
        Ok(Some(PgReference {
            schema: nsp,
            table: name,
            column,
        }))
    }
}
/// Oids of the functions a stored parse tree calls (`:funcid`, operators' `:opfuncid`).
pub fn called_functions(tree: &str) -> Vec<u32> {
    let mut oids = Vec::new();
    for tag in [":funcid ", ":opfuncid "] {
        let mut rest = tree;
        while let Some(i) = rest.find(tag) {
            rest = &rest[i + tag.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(oid) = digits.parse::<u32>()
                && oid != 0
                && !oids.contains(&oid)
            {
                oids.push(oid);
            }
        }
    }
    oids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_called_functions_in_a_parse_tree() {
        let tree = "({QUERY :targetList ({TARGETENTRY :expr {FUNCEXPR :funcid 1598 :args ({OPEXPR :opno 1 :opfuncid 177 :args <>})}})})";
        assert_eq!(called_functions(tree), vec![1598, 177]);
        assert!(called_functions("{CONST :consttype 23}").is_empty());
    }
}
