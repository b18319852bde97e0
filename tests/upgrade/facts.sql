-- One query a line (a single text value each); make_fixture.sh records each
-- value on the previous release's ledger, test_upgrade.c compares after the
-- upgrade. The table digests are appended by make_fixture.sh.
SELECT string_agg(a.name || '=' || e.s, ',' ORDER BY a.name) FROM (SELECT account_id, sum(amount_minor) AS s FROM entries GROUP BY 1) e JOIN accounts a ON a.id = e.account_id
SELECT string_agg(sku || ':' || coalesce(stock::text, 'unlimited') || ':' || price_minor, ',' ORDER BY sku) FROM items
SELECT string_agg(i.sku || '=' || s.n, ',' ORDER BY i.sku) FROM (SELECT item_id, sum(qty) AS n FROM transfers WHERE kind = 1 GROUP BY 1) s JOIN items i ON i.id = s.item_id
SELECT string_agg(t.id || ':' || t.serial || '+' || t.qty, ',' ORDER BY t.id) FROM transfers t WHERE t.serial IS NOT NULL
SELECT string_agg(t.ref_transfer || '<-' || t.amount_minor, ',' ORDER BY t.id) FROM transfers t WHERE kind = 3
SELECT string_agg(a.name, ',' ORDER BY a.name) FROM transfers t JOIN accounts a ON a.id = t.account_id WHERE t.kind = 1 AND t.idem_key LIKE 'raffle:%'
SELECT count(*) FROM raffle_entries
SELECT string_agg(a.name, ',' ORDER BY a.name) FROM attendance x JOIN accounts a ON a.id = x.account_id
SELECT string_agg(a.name, ',' ORDER BY a.name) FROM consents c JOIN accounts a ON a.id = c.account_id
SELECT count(*) FROM held_messages
SELECT string_agg(actor || ' ' || action, ',' ORDER BY id) FROM audit_log
