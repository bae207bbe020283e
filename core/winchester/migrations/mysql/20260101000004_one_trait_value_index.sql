-- One value index on the trait index rows instead of four. A row sets exactly
-- one typed column and the others are NULL, so (name, t_string, t_int,
-- t_datetime, t_float) serves every typed equality: text `name = ? AND
-- t_string = ?`, int `... AND t_string IS NULL AND t_int = ?`, and so on
-- (MySQL/MariaDB use IS NULL key parts for ref access). Each row then costs
-- two b-tree inserts (primary key + this index) instead of five.
ALTER TABLE `trait`
    DROP INDEX ix_trait_string,
    DROP INDEX ix_trait_int,
    DROP INDEX ix_trait_float,
    DROP INDEX ix_trait_datetime,
    ADD INDEX ix_trait_value (name, t_string, t_int, t_datetime, t_float);
