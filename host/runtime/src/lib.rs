//! The heatbill runtime: everything around the rules engine that a heating company's nightly
//! billing needs on one host, shaped for many.
//!
//! | module | owns |
//! |---|---|
//! | [`settings`] | the typed configuration (TOML file, then `HEATBILL_*` variables) |
//! | [`model`] | the records the runtime keeps (companies, customers as of a date, bills, runs) |
//! | [`store`] | the system of record: [`store::Store`], one trait per concern, each written once over one SQL layer for [`store::postgres`] and [`store::sqlite`] |
//! | [`import`] | streaming CSV imports: typed per column, all or nothing per file |
//! | [`company`] | company files: a company, its seasons and its rule chain versions |
//! | [`demo`] | a generated company (the demo, the benchmarks, the tests) |
//! | [`directory`] | the customer directory: profiles (account number, name, phone, address), effective-dated, searched and masked |
//! | [`cache`] | the cache (Redis, or in the process): chains, components, shards' customers, the arrears ranking |
//! | [`coord`] | coordination between hosts (Redis, or in the process): locks, live progress |
//! | [`events`] | events out: fee control (费控) decides valve requests (pure; the store's outbox keeps them) |
//! | [`publish`] | the publisher: the outbox delivered to MQTT (QoS 1, one host at a time) and webhooks, valve reports taken back, unacknowledged closes escalated |
//! | [`webhook`] | signed webhooks: HMAC-SHA256 signatures, the retry schedule, dead deliveries |
//! | [`invoices`] | e-invoices (数电票): the request of each payment and the red-letter request of each refund, lines by charge type under the company's tax treatment |
//! | [`ledger`] | the account ledger: entries, allocation, accounts, day closes, statements |
//! | [`notices`] | what is due when: the billing policy, periods, payment notices and overdue arrears |
//! | [`receivables`] | the receivables report: balances by age and community |
//! | [`audit`] | `heatbill audit`: an operator's check of a company's books, date by date |
//! | [`fault`] | fault injection for the reliability tests (settings that stop a process mid-write) |
//! | [`services`] | the store, coordination and cache a process uses, chosen by configuration |
//! | [`run`] | the daily run: its protocol, the pipeline of claim, load, evaluate and write, the CPU pool, the report, and the handle ([`run::Runs`]) the CLI, the admin server and the worker call to run, start, cancel, wind down, serve and schedule runs |
//!
//! The engine (`heatbill-engine`) has no database and no async runtime; this crate adds both.
//! A run is a pipeline over shards of customers: a shard is loaded in a few set-based queries,
//! evaluated on a pool of threads that each own their sandbox instances, and written by a
//! bounded async writer in one transaction per shard, while the next shards are loaded and
//! evaluated. Correctness lives in the database: a bill is unique on (company, customer,
//! date), and a shard's bills and its "done" mark commit together, so a crashed run resumes
//! where it stopped and a re-run writes only what changed.

#![warn(missing_docs)]

pub mod audit;
pub mod cache;
pub mod company;
pub mod coord;
pub mod demo;
pub mod directory;
pub mod events;
pub mod fault;
pub mod import;
pub mod invoices;
pub mod ledger;
pub mod model;
pub mod notices;
pub mod publish;
pub mod receivables;
pub mod run;
pub mod services;
pub mod settings;
pub mod store;
pub mod subsidy;
pub mod webhook;
