//! What the benchmark binaries share.

/// Drops and creates the database `name` on the server of `admin` (a PostgreSQL URL that may
/// create databases); the URL of the new database.
pub async fn fresh_database(admin: &str, name: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {admin}"))?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}
