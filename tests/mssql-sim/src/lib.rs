//! SQL Server CDC simulator over TDS.
