-- The compose stack's sample source: database `shop` with CDC on four tables that together
-- use every SQL Server type of the design's type map that the pipeline carries.
--
-- Run once by the `mssql-init` job (compose/mssql/init.sh, sqlcmd), batch by batch at the `GO`
-- lines, and by tests/mssql-sim/tests/compose_init.rs against the SQL Server simulator: so it
-- is plain T-SQL that both accept (no IF, no variables). init.sh skips it when `shop` is there.
--
-- Seed rows go in before CDC is enabled: they are what the extractor's first snapshot reads;
-- changes made afterwards arrive through the change tables.

CREATE DATABASE shop;
GO

USE shop;
GO

-- bit, tinyint, int, uniqueidentifier, nvarchar, varchar, char, nchar, date, datetimeoffset,
-- ntext, xml, image, smallmoney, rowversion
CREATE TABLE dbo.customers (
    customer_id int NOT NULL PRIMARY KEY,
    external_id uniqueidentifier NOT NULL,
    name nvarchar(100) NOT NULL,
    email varchar(200) NULL,
    country_code char(2) NULL,
    phone nchar(16) NULL,
    is_active bit NOT NULL,
    loyalty_tier tinyint NULL,
    birth_date date NULL,
    signed_up_at datetimeoffset(7) NOT NULL,
    notes ntext NULL,
    preferences xml NULL,
    avatar image NULL,
    credit_limit smallmoney NULL,
    row_version rowversion
);

-- bigint, smallint, numeric, money, real, float, text, binary, varbinary(max), datetime,
-- smalldatetime
CREATE TABLE dbo.products (
    product_id bigint NOT NULL PRIMARY KEY,
    sku varchar(40) NOT NULL,
    name nvarchar(200) NOT NULL,
    description text NULL,
    list_price money NOT NULL,
    weight_kg real NULL,
    rating float NULL,
    stock_level smallint NOT NULL,
    width_cm numeric(9,2) NULL,
    barcode binary(8) NULL,
    thumbnail varbinary(max) NULL,
    created_at datetime NOT NULL,
    available_from smalldatetime NULL
);

-- datetime2, time, decimal, nvarchar(max), varbinary(n)
CREATE TABLE dbo.orders (
    order_id int NOT NULL PRIMARY KEY,
    customer_id int NOT NULL,
    status varchar(20) NOT NULL,
    ordered_at datetime2(7) NOT NULL,
    delivery_slot time(3) NULL,
    total_amount decimal(12,2) NOT NULL,
    currency char(3) NOT NULL,
    notes nvarchar(max) NULL,
    tracking_token varbinary(16) NULL
);

-- A composite primary key.
CREATE TABLE dbo.order_lines (
    order_id int NOT NULL,
    line_no smallint NOT NULL,
    product_id bigint NOT NULL,
    quantity int NOT NULL,
    unit_price money NOT NULL,
    discount_rate numeric(5,4) NOT NULL,
    line_total decimal(14,2) NOT NULL,
    CONSTRAINT pk_order_lines PRIMARY KEY (order_id, line_no)
);
GO

INSERT INTO dbo.customers (customer_id, external_id, name, email, country_code, phone, is_active,
    loyalty_tier, birth_date, signed_up_at, notes, preferences, avatar, credit_limit)
VALUES
    (1, '6F9619FF-8B86-D011-B42D-00C04FC964FF', N'Ada Lovelace', 'ada@example.com', 'GB',
     N'+44 20 7946 0018', 1, 3, '1815-12-10', '2024-01-15T09:30:00.1234567+00:00',
     N'Prefers e-mail.', N'<preferences><newsletter>true</newsletter></preferences>',
     0x89504E470D0A1A0A, 5000.00),
    (2, '0E984725-C51C-4BF4-9960-E1C80E27ABA0', N'Zoë Ångström', NULL, 'SE', NULL, 1, 1,
     '1990-02-28', '2024-03-31T23:59:59.9999999+02:00', NULL, NULL, NULL, 250.50),
    (3, 'A5B2C9E1-7D3F-4E8A-9B1C-2D3E4F5A6B7C', N'李雷', 'li.lei@example.cn', 'CN',
     N'+86 10 5555 0100', 0, NULL, NULL, '2023-11-05T08:00:00.0000000-05:00',
     N'Account closed on request.', N'<preferences/>', NULL, NULL);

INSERT INTO dbo.products (product_id, sku, name, description, list_price, weight_kg, rating,
    stock_level, width_cm, barcode, thumbnail, created_at, available_from)
VALUES
    (1001, 'KB-101', N'Mechanical keyboard', 'Tenkeyless, brown switches.', 89.9900, 0.95,
     4.6, 120, 36.50, 0x0012345678905678, 0xFFD8FFE000104A46, '2024-01-02T10:00:00.000',
     '2024-01-10T00:00:00'),
    (1002, 'MS-202', N'Wireless mouse', 'Two buttons and a wheel.', 24.5000, 0.1, 4.1, 340,
     6.20, NULL, NULL, '2024-01-03T11:30:15.997', '2024-02-01T08:30:00'),
    (1003, 'CB-303', N'USB-C cable, 2 m', NULL, 9.9900, NULL, NULL, 0, NULL, NULL, NULL,
     '2024-02-14T16:45:00.000', NULL);

INSERT INTO dbo.orders (order_id, customer_id, status, ordered_at, delivery_slot, total_amount,
    currency, notes, tracking_token)
VALUES
    (5001, 1, 'paid', '2024-04-01T12:00:00.1234567', '09:00:00.000', 114.49, 'EUR',
     N'Leave at the door.', 0x0102030405060708090A0B0C0D0E0F10),
    (5002, 2, 'shipped', '2024-04-02T08:15:30.5000000', '14:30:00.250', 9.99, 'SEK', NULL,
     NULL),
    (5003, 1, 'new', '2024-04-03T19:45:00.0000001', NULL, 49.00, 'EUR', NULL, NULL);

INSERT INTO dbo.order_lines (order_id, line_no, product_id, quantity, unit_price,
    discount_rate, line_total)
VALUES
    (5001, 1, 1001, 1, 89.9900, 0.0000, 89.99),
    (5001, 2, 1002, 1, 24.5000, 0.0000, 24.50),
    (5002, 1, 1003, 1, 9.9900, 0.0000, 9.99),
    (5003, 1, 1002, 2, 24.5000, 0.0000, 49.00);
GO

EXEC sys.sp_cdc_enable_db;
GO

EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'customers', @role_name = NULL;
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'products', @role_name = NULL;
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL;
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'order_lines', @role_name = NULL;
GO
