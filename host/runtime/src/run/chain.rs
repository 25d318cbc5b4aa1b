//! The chain a company's date runs under, loaded through the cache, and the dry run of one
//! customer-day with it (or with a draft chain) that writes nothing.

use super::*;

/// The chain version in force on `date`, with its plugins loaded by the engine. The chain
/// versions and the components come through the cache (keyed by the company's data version and
/// by digest: never stale).
pub async fn chain_for(
    services: &Services,
    engine: &Engine,
    company: &Company,
    date: NaiveDate,
) -> Result<(ChainVersion, Arc<Chain>), RunError> {
    let store = services.store.clone();
    let cid = company.id;
    let versions = services
        .cache
        .get_or_load(
            &format!("chains:{}:{}", company.id, company.data_version),
            move || async move {
                let v = store.chain_versions(cid).await?;
                Ok::<_, CacheLoadError>(serde_json::to_vec(&v).expect("chain versions serialize"))
            },
        )
        .await
        .map_err(|e| RunError::Refused(format!("reading the chain versions: {e}")))?;
    let versions: Vec<ChainVersion> = serde_json::from_slice(&versions)
        .map_err(|e| RunError::Refused(format!("a cached chain is unreadable: {e}")))?;
    let Some(version) = versions.into_iter().rfind(|v| v.effective_from <= date) else {
        return Err(RunError::Refused(format!(
            "company {}: no rule chain is in force on {date}; add a chain version effective on \
             or before it to the company file and apply it",
            company.slug
        )));
    };
    let label = version.effective_from.to_string();
    let chain = load_chain(services, engine, company, &version.entries, &label).await?;
    Ok((version, chain))
}

/// Loads the plugins of a chain definition (through the cache, by digest) into a chain.
/// `label` names the chain in errors (its effective date, or "the draft").
pub async fn load_chain(
    services: &Services,
    engine: &Engine,
    company: &Company,
    definition: &[ChainEntryDef],
    label: &str,
) -> Result<Arc<Chain>, RunError> {
    let mut entries = Vec::with_capacity(definition.len());
    for e in definition {
        let store = services.store.clone();
        let digest = e.plugin.clone();
        let bytes = services
            .cache
            .get_or_load(&format!("plugin:{}", e.plugin), move || async move {
                Ok::<_, CacheLoadError>(store.plugin(&digest).await?.component)
            })
            .await
            .map_err(|err| RunError::Refused(format!("reading plugin {}: {err}", e.name)))?;
        let plugin = blocking(engine, move |engine| engine.load(&bytes))
            .await
            .map_err(|err| {
                RunError::Refused(format!(
                    "company {}: plugin {} {} (sha256 {}) of the chain of {label} does not \
                     load: {err}",
                    company.slug, e.name, e.version, e.plugin
                ))
            })?;
        entries.push(ChainEntry::new(plugin, e.params.clone()));
    }
    // Validating parameters runs their schemas' patterns: CPU work, off the async threads.
    let slug = company.slug.clone();
    let chain = blocking(engine, move |_| Chain::new(slug, entries))
        .await
        .map_err(|err| RunError::Refused(format!("the chain of {label} is not valid: {err}")))?;
    Ok(Arc::new(chain))
}

/// What one customer-day would be billed, computed without writing anything.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The engine's input, as the nightly run would build it.
    pub input: DayInput,
    /// The bill, when the chain billed it.
    pub bill: Option<heatbill_engine::Bill>,
    /// Why it was not billed (the error that would park the customer).
    pub error: Option<BillError>,
    /// What the plugins printed (bounded).
    pub log: String,
    /// The customer's current stored bill of the date, if any, to compare with.
    pub current: Option<StoredBill>,
}

/// Bills one customer-day the way the nightly run would (the customer's version in force,
/// the day's reading and temperature, the balance carried from the previous day's bill and
/// the payments), with the chain in force on the date or `draft`, and writes nothing.
pub async fn dry_run(
    services: &Services,
    engine: &Engine,
    settings: &Settings,
    company: &Company,
    customer_id: &str,
    date: NaiveDate,
    draft: Option<&[ChainEntryDef]>,
) -> Result<DryRun, RunError> {
    let store = &services.store;
    let chain = match draft {
        Some(d) => load_chain(services, engine, company, d, "the draft").await?,
        None => chain_for(services, engine, company, date).await?.1,
    };
    // A one-customer shard: [id, id + "\u{1}") holds the id alone (ids have no control
    // characters).
    let range = ShardRange {
        shard_no: 0,
        first: customer_id.to_string(),
        end: Some(format!("{customer_id}\u{1}")),
    };
    let data = store.load_shard(company.id, date, &range, true).await?;
    let customers = store.load_customers(company.id, date, &range, None).await?;
    let Some(customer) = customers.into_iter().find(|c| c.customer_id == customer_id) else {
        return Err(RunError::Store(StoreError::NotFound(format!(
            "company {}: customer {customer_id} has no data in force on {date}",
            company.slug
        ))));
    };
    let one = |id: &str| id == customer_id;
    let found = shard::Found {
        previous: data.previous.iter().find(|x| one(&x.customer_id)),
        opening: data.openings.iter().find(|x| one(&x.customer_id)),
        payments: &data.payments,
        heat: data.readings.iter().find(|x| one(&x.0)).map(|x| x.1),
        temperature: data.temperatures.iter().find(|x| one(&x.0)).map(|x| x.1),
        existing: data.existing.iter().find(|x| one(&x.customer_id)),
        due_today: data
            .notices_due
            .iter()
            .find(|x| one(&x.0))
            .map_or(Decimal::ZERO, |x| x.1),
    };
    let allocation = crate::ledger::Allocation::of(&company.policies)
        .map_err(|e| RunError::Refused(format!("company {}: {e}", company.slug)))?;
    let policy = crate::notices::BillingPolicy::of(&company.policies)
        .map_err(|e| RunError::Refused(format!("company {}: {e}", company.slug)))?;
    let bal = shard::balance(&found, date, allocation, policy.is_some());
    let has_season_plugin = chain
        .entries()
        .iter()
        .any(|e| e.plugin().kind() == PluginKind::Season);
    let ctx = RunContext {
        company: company.slug.clone(),
        company_id: company.id,
        customers_version: company.customers_version,
        use_cache: false,
        date,
        allocation,
        chain_version_id: 0,
        chain_part: [0; 8],
        season: if has_season_plugin {
            None
        } else {
            season_preset(company, date)
        },
        kinds: HashMap::new(),
        batch: 1,
        purity_sample: 0,
        strict: false.into(),
        billing: None,
    };
    let changed = shard::Changed {
        customer_id: customer_id.to_string(),
        inputs: Vec::new(),
        bal,
        heat: found.heat,
        temperature: found.temperature,
        existing: None,
    };
    let input = shard::day_input(&ctx, &customer, &changed);
    let _ = settings;
    let (result, log) = {
        let input = input.clone();
        blocking(engine, move |engine| {
            let mut ev = Evaluator::new(engine, chain);
            let r = ev.dry_run(&input);
            (r, ev.take_log())
        })
        .await
    };
    let current = store.bill(company.id, customer_id, date).await?;
    let (bill, error) = match result {
        Ok(b) => (Some(b), None),
        Err(e) => (None, Some(e)),
    };
    Ok(DryRun {
        input,
        bill,
        error,
        log,
        current,
    })
}
