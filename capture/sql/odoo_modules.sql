-- Odoo modules whose state is pending. NOWAIT: if a migration holds or waits
-- for a conflicting lock on ir_module_module the recorder gives up at once
-- instead of joining the queue. Sent as one simple-protocol query string: one
-- round trip, one implicit transaction that ends with the SELECT.
LOCK TABLE public.ir_module_module IN ACCESS SHARE MODE NOWAIT;
SELECT name::text, state::text
FROM public.ir_module_module
WHERE state IN ('to install', 'to upgrade', 'to remove')
ORDER BY name
