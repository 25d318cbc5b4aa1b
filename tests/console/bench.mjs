// The console's server time per page, on a company `./dev bench-console` made with
// `heatbill demo`: each page asked N times in turn (one client, loopback, keep-alive), the time
// to the whole answer measured, p50 and p99 printed as a table. Node's own fetch: no browser,
// so this is the server's time (and the transfer), not rendering.
//   node tests/console/bench.mjs <base> <operator token> <company> [N]

const [base, token, slug, nArg] = process.argv.slice(2);
if (!base || !token || !slug) {
  console.error('usage: node tests/console/bench.mjs <base> <operator token> <company> [N]');
  process.exit(2);
}
const N = Number(nArg || 30);

const cookieOf = (r, name) =>
  (r.headers.getSetCookie?.() || [])
    .map((c) => c.split(';')[0])
    .find((c) => c.startsWith(`${name}=`));

// Sign in as the console does.
let r = await fetch(`${base}/console/sign-in`);
const pre = cookieOf(r, 'hb_pre');
r = await fetch(`${base}/console/sign-in`, {
  method: 'POST',
  redirect: 'manual',
  headers: { cookie: pre, 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token, _csrf: pre.split('=')[1] }).toString(),
});
const session = cookieOf(r, 'hb_session');
if (!session) throw new Error(`sign-in failed: ${r.status}`);

// A night and a customer to show, through the API.
const api = async (path) => {
  const res = await fetch(`${base}/v1/companies/${slug}${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
};
const runs = await api('/runs?limit=1');
const run = runs[0];
const page = await api(`/bills?date=${run.date}&limit=1`);
const customer = page.bills[0].customer_id;
const c = `/console/companies/${slug}`;
const pages = [
  ['dashboard', c],
  ['arrears by age (dashboard fragment)', `${c}/arrears`],
  ['runs', `${c}/runs`],
  ['a run with its report', `${c}/runs/${run.id}`],
  ['customer search (account no.)', `${c}/customers?by=account_no&q=A-0000001`],
  ['account page', `${c}/customers/${encodeURIComponent(customer)}`],
  ['bill versions', `${c}/customers/${encodeURIComponent(customer)}/bills/${run.date}`],
  ['counter, a customer found', `${c}/counter?customer=${encodeURIComponent(customer)}`],
  ["the day's close", `${c}/day-close`],
  ['reconciliation (statements)', `${c}/statements`],
  ['data (imports)', `${c}/data`],
  ['plugins', `${c}/plugins`],
  ['rules', `${c}/chains`],
  ['parameter form', `${c}/chains/edit?entry=1`],
];

const rows = [];
for (const [name, path] of pages) {
  const ms = [];
  let bytes = 0;
  let status = 0;
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    const res = await fetch(`${base}${path}`, { headers: { cookie: session } });
    const body = await res.arrayBuffer();
    ms.push(performance.now() - t);
    bytes = body.byteLength;
    status = res.status;
  }
  ms.sort((a, b) => a - b);
  const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))];
  rows.push([name, status, q(0.5).toFixed(1), q(0.99).toFixed(1), (bytes / 1024).toFixed(1)]);
}
console.log(`console pages, ${N} requests each, one client on loopback`);
console.log('| page | status | p50 ms | p99 ms | KiB |');
console.log('|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
if (rows.some((r) => r[1] !== 200)) process.exit(1);
