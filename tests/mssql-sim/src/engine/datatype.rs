//! SQL Server type names: parsing a declared type, and printing one in messages.

use crate::tds::types::SqlType;

/// The type named by `declared` (e.g. `nvarchar(max)`, `DECIMAL(38,10)`, `datetime2(7)`).
pub fn parse(declared: &str) -> Option<SqlType> {
    let text = declared.trim().to_ascii_lowercase();
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_owned(),
            rest.trim_end_matches(')')
                .split(',')
                .map(|a| a.trim().to_owned())
                .collect(),
        ),
        None => (text.clone(), Vec::new()),
    };
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u16>().ok());
    let length = || match args.first().map(String::as_str) {
        Some("max") => Some(None),
        Some(_) => number(0).map(Some),
        None => Some(Some(1)),
    };
    let scale = || number(0).map_or(Some(7), |s| u8::try_from(s).ok().filter(|s| *s <= 7));
    Some(match name.as_str() {
        "bit" => SqlType::Bit,
        "tinyint" => SqlType::TinyInt,
        "smallint" => SqlType::SmallInt,
        "int" | "integer" => SqlType::Int,
        "bigint" => SqlType::BigInt,
        "decimal" | "numeric" | "dec" => {
            let precision = u8::try_from(number(0).unwrap_or(18))
                .ok()
                .filter(|p| (1..=38).contains(p))?;
            let scale = u8::try_from(number(1).unwrap_or(0))
                .ok()
                .filter(|s| *s <= precision)?;
            SqlType::Decimal { precision, scale }
        }
        "money" => SqlType::Money,
        "smallmoney" => SqlType::SmallMoney,
        "float" => match number(0) {
            Some(bits) if bits <= 24 => SqlType::Real,
            _ => SqlType::Float,
        },
        "real" => SqlType::Real,
        "date" => SqlType::Date,
        "time" => SqlType::Time { scale: scale()? },
        "datetime" => SqlType::DateTime,
        "smalldatetime" => SqlType::SmallDateTime,
        "datetime2" => SqlType::DateTime2 { scale: scale()? },
        "datetimeoffset" => SqlType::DateTimeOffset { scale: scale()? },
        "char" | "character" => SqlType::Char { length: length()?? },
        "varchar" => SqlType::VarChar { length: length()? },
        "nchar" => SqlType::NChar { length: length()?? },
        "nvarchar" => SqlType::NVarChar { length: length()? },
        "binary" => SqlType::Binary { length: length()?? },
        "varbinary" => SqlType::VarBinary { length: length()? },
        "uniqueidentifier" => SqlType::UniqueIdentifier,
        "xml" => SqlType::Xml,
        "text" => SqlType::VarChar { length: None },
        "ntext" => SqlType::NVarChar { length: None },
        "image" => SqlType::VarBinary { length: None },
        "rowversion" | "timestamp" => SqlType::Binary { length: 8 },
        _ => return None,
    })
}

/// The type's name as SQL Server prints it in messages.
pub fn name(sql_type: SqlType) -> String {
    let length = |l: Option<u16>| l.map_or_else(|| "max".to_owned(), |l| l.to_string());
    match sql_type {
        SqlType::Bit => "bit".into(),
        SqlType::TinyInt => "tinyint".into(),
        SqlType::SmallInt => "smallint".into(),
        SqlType::Int => "int".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Decimal { .. } => "numeric".into(),
        SqlType::Money => "money".into(),
        SqlType::SmallMoney => "smallmoney".into(),
        SqlType::Float => "float".into(),
        SqlType::Real => "real".into(),
        SqlType::Date => "date".into(),
        SqlType::Time { .. } => "time".into(),
        SqlType::DateTime => "datetime".into(),
        SqlType::SmallDateTime => "smalldatetime".into(),
        SqlType::DateTime2 { .. } => "datetime2".into(),
        SqlType::DateTimeOffset { .. } => "datetimeoffset".into(),
        SqlType::Char { length } => format!("char({length})"),
        SqlType::VarChar { length: l } => format!("varchar({})", length(l)),
        SqlType::NChar { length } => format!("nchar({length})"),
        SqlType::NVarChar { length: l } => format!("nvarchar({})", length(l)),
        SqlType::Binary { length } => format!("binary({length})"),
        SqlType::VarBinary { length: l } => format!("varbinary({})", length(l)),
        SqlType::UniqueIdentifier => "uniqueidentifier".into(),
        SqlType::Xml => "xml".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_parse_with_their_parameters() {
        assert_eq!(
            parse("DECIMAL(38,10)"),
            Some(SqlType::Decimal {
                precision: 38,
                scale: 10
            })
        );
        assert_eq!(
            parse("nvarchar(max)"),
            Some(SqlType::NVarChar { length: None })
        );
        assert_eq!(
            parse("nvarchar"),
            Some(SqlType::NVarChar { length: Some(1) })
        );
        assert_eq!(parse("datetime2"), Some(SqlType::DateTime2 { scale: 7 }));
        assert_eq!(parse("time(3)"), Some(SqlType::Time { scale: 3 }));
        assert_eq!(parse("decimal(39,0)"), None);
        assert_eq!(parse("geography"), None);
    }
}
