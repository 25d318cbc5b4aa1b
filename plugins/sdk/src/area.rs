//! Area-based pricing (按面积计费), shared by the reference tariffs that bill by area
//! (`area-tariff`, `suspension-fee`, and the basic part of `metered-tariff`), so each city rule
//! is written once.
//!
//! The parameter keys ([`AreaParams`], documented in `docs/reference-plugins.md`):
//!
//! | key | meaning |
//! |---|---|
//! | `area_basis` | `"building"` (default) or `"usable"` area |
//! | `prices` | `{ residential = "38.32", non-residential = "43.3" }` 元/m² per season (or per day) |
//! | `pricing` | `"season"` (default: the price is per season, spread over its days) or `"day"` |
//! | `special_classes` | `{ garage = { share = "0.5", share_of = "non-residential" } }` or `{ garage = { price = "12" } }` |
//! | `ceiling_surcharge` | `{ threshold = "3.2", step = "0.1", rate = "0.03", steps = "completed" }` |
//! | `government_prices` | `{ residential = "2.7" }`: the part of the price the government pays |
//!
//! A plugin combines these keys with its own through [`WithArea`].
//!
//! The season fee of a line is `T = round_fen(area × price × surcharge factor × share)`, with
//! the government's part `T_g = round_fen(area × government price × share)` and the customer's
//! `T_c = T − T_g`; each is then spread over the season by cumulative rounding
//! ([`crate::cumulative_share`]), so each adds up to its own season amount exactly.
//!
//! One file, though long: the area rules (classes, special classes, the ceiling surcharge, the
//! payer split, per-season and per-day prices) are one computation, `AreaPricing::charge`, and
//! its parameter types; a quarter of the file is unit tests with the cities' figures.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::{Map, Value};

use crate::decimal::{fen_to_wit, from_fen, input, mul_fen, output};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::params::{bad_params, opt_decimal};
use crate::season::Accrual;
use crate::{CustomerClass, CustomerDay, Line, LineKindId, Payer, RuleError};

/// Which area of the customer is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AreaBasis {
    /// The building area (建筑面积), most cities.
    #[default]
    Building,
    /// The usable area (使用面积), e.g. Harbin. A customer without one is a missing input.
    Usable,
}

/// What the prices are per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Pricing {
    /// Per m² per season, spread over the season's days by cumulative rounding.
    #[default]
    Season,
    /// Per m² per heating day (Xuchang 0.18 元/m²/day), rounded per day.
    Day,
}

/// How ceiling-height steps are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepCount {
    /// Every started step counts (Shenyang: 3.81 m over 3.5 m by 0.3 m steps is 2 steps).
    #[default]
    Started,
    /// Only completed steps count (3.81 m over 3.5 m by 0.3 m steps is 1 step).
    Completed,
}

/// A price for each customer class, in 元 per m² per season (or per day when `pricing` is
/// "day"), e.g. {"residential": "38.32", "non-residential": "43.3"}. Both classes are required.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassPrices {
    /// Homes (居民), e.g. "38.32".
    #[serde(with = "crate::params::decimal")]
    #[schemars(with = "crate::params::DecimalText")]
    pub residential: Decimal,
    /// Businesses and public buildings (非居民), e.g. "43.3".
    #[serde(rename = "non-residential", with = "crate::params::decimal")]
    #[schemars(with = "crate::params::DecimalText")]
    pub non_residential: Decimal,
}

/// The part of the price per m² the government pays, by class, e.g. {"residential": "2.7"}
/// (Shenyang 26 = customer 23.3 + government 2.7). The government's part becomes its own line
/// with payer government, spread from its own season amount.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GovernmentPrices {
    /// Per m², residential (default none).
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<crate::params::DecimalText>")]
    pub residential: Option<Decimal>,
    /// Per m², non-residential (default none).
    #[serde(rename = "non-residential", default, with = "opt_decimal")]
    #[schemars(with = "Option<crate::params::DecimalText>")]
    pub non_residential: Option<Decimal>,
}

/// The price of a special class: a fixed `price`, or a `share` of a class's price, e.g.
/// {"share": "0.5", "share_of": "non-residential"} (Shenyang garages) or {"price": "12"}.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialClassParams {
    /// A fixed price per m² (per season or per day, like `prices`).
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<crate::params::DecimalText>")]
    pub price: Option<Decimal>,
    /// A share of a class's price, e.g. "0.5" (Shenyang garages).
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<crate::params::DecimalText>")]
    pub share: Option<Decimal>,
    /// Whose price `share` applies to (default: the customer's own class).
    #[serde(default)]
    pub share_of: Option<CustomerClass>,
    /// The government's part of this class's price per m² (default none).
    #[serde(default, with = "opt_decimal")]
    #[schemars(with = "Option<crate::params::DecimalText>")]
    pub government_price: Option<Decimal>,
}

/// A surcharge for high ceilings: the price rises by `rate` per step of the height above
/// `threshold`, e.g. {"threshold": "3.2", "step": "0.1", "rate": "0.03"}. A customer without a
/// recorded ceiling height pays no surcharge.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CeilingSurchargeParams {
    /// The classes it applies to (default `["non-residential"]`).
    #[serde(default = "default_surcharge_classes")]
    pub classes: Vec<CustomerClass>,
    /// The height in m above which the surcharge starts, e.g. "3.2".
    #[serde(with = "crate::params::decimal")]
    #[schemars(with = "crate::params::DecimalText")]
    pub threshold: Decimal,
    /// The height of one step in m, e.g. "0.1".
    #[serde(with = "crate::params::decimal")]
    #[schemars(with = "crate::params::DecimalText")]
    pub step: Decimal,
    /// The surcharge per step as a share of the price, e.g. "0.03" for 3 %.
    #[serde(with = "crate::params::decimal")]
    #[schemars(with = "crate::params::DecimalText")]
    pub rate: Decimal,
    /// Whether "started" (default) or only "completed" steps count.
    #[serde(default)]
    pub steps: StepCount,
    /// At most this many steps count (default: no limit).
    #[serde(default)]
    pub max_steps: Option<u32>,
}

fn default_surcharge_classes() -> Vec<CustomerClass> {
    vec![CustomerClass::NonResidential]
}

/// The area-pricing keys of a tariff's parameters. See the module docs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaParams {
    /// The area billed: "building" (建筑面积, default) or "usable" (使用面积, e.g. Harbin). A
    /// customer without a usable area is a missing-input error when billed by usable area.
    #[serde(default)]
    pub area_basis: AreaBasis,
    /// The price per m² by class, in 元 per season (or per day when `pricing` is "day").
    pub prices: ClassPrices,
    /// "season" (default): prices are per season and spread over the regular season's days by
    /// cumulative rounding; "day": prices are per heating day, rounded per day (Xuchang 0.18
    /// 元/m²/day).
    #[serde(default)]
    pub pricing: Pricing,
    /// Prices of special classes by name (the customer's special class). A customer of an
    /// unlisted special class is an unsupported-case error. Default none.
    #[serde(default)]
    pub special_classes: BTreeMap<String, SpecialClassParams>,
    /// The ceiling-height surcharge (default none).
    #[serde(default)]
    pub ceiling_surcharge: Option<CeilingSurchargeParams>,
    /// The government's part of the prices, the payer split (default none).
    #[serde(default)]
    pub government_prices: Option<GovernmentPrices>,
}

/// The keys of [`AreaParams`].
pub const AREA_KEYS: &[&str] = &[
    "area_basis",
    "prices",
    "pricing",
    "special_classes",
    "ceiling_surcharge",
    "government_prices",
];

/// An [`AreaParams`] together with a plugin's own keys `X`, in one flat JSON object.
///
/// serde's `flatten` does not combine with `deny_unknown_fields`, so the object is split by
/// key: the [`AREA_KEYS`] go to [`AreaParams`], the rest to `X`; both reject unknown keys.
#[derive(Debug, Clone)]
pub struct WithArea<X> {
    /// The area-pricing keys.
    pub area: AreaParams,
    /// The plugin's own keys.
    pub extra: X,
}

impl<'de, X: DeserializeOwned> Deserialize<'de> for WithArea<X> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        let (mut area, mut extra) = (Map::new(), Map::new());
        for (k, v) in map {
            if AREA_KEYS.contains(&k.as_str()) {
                area.insert(k, v);
            } else {
                extra.insert(k, v);
            }
        }
        let area = from_value::<AreaParams>(area).map_err(D::Error::custom)?;
        let extra = from_value::<X>(extra).map_err(|e| {
            if e.contains("unknown field") {
                D::Error::custom(format!("{e} (or one of the area keys {AREA_KEYS:?})"))
            } else {
                D::Error::custom(e)
            }
        })?;
        Ok(WithArea { area, extra })
    }
}

/// One flat object: the area keys' properties and the plugin's own, both closed
/// (`additionalProperties: false`), `required` from both, the description of `X`.
impl<X: JsonSchema> JsonSchema for WithArea<X> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("WithArea_{}", X::schema_name()).into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let mut schema = X::json_schema(g);
        let area = AreaParams::json_schema(g);
        let object = |s: &Schema, key: &str| s.get(key).and_then(Value::as_object).cloned();
        let mut properties = object(&area, "properties").unwrap_or_default();
        properties.extend(object(&schema, "properties").unwrap_or_default());
        let mut required: Vec<Value> = area
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(own) = schema.get("required").and_then(Value::as_array) {
            required.extend(own.iter().cloned());
        }
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), Value::Object(properties));
        schema.insert("required".into(), Value::Array(required));
        schema.insert("additionalProperties".into(), false.into());
        schema
    }
}

fn from_value<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("`{path}`: {}", e.into_inner())
        }
    })
}

#[derive(Debug, Clone, Copy)]
struct Price {
    /// The full price per m².
    price: Decimal,
    /// The government's part of it per m².
    government: Decimal,
}

#[derive(Debug, Clone)]
struct Special {
    name: String,
    fixed: Option<Price>,
    share: Decimal,
    share_of: Option<CustomerClass>,
    government: Decimal,
}

#[derive(Debug, Clone)]
struct Surcharge {
    residential: bool,
    non_residential: bool,
    threshold: Decimal,
    step: Decimal,
    rate: Decimal,
    steps: StepCount,
    max_steps: Option<u32>,
}

/// Checked, ready-to-use area pricing, built once in `configure`.
#[derive(Debug, Clone)]
pub struct AreaPricing {
    basis: AreaBasis,
    pricing: Pricing,
    residential: Price,
    non_residential: Price,
    specials: Vec<Special>,
    surcharge: Option<Surcharge>,
    split: bool,
}

/// The lines an area-priced plugin emits: its customer line kind and, with a payer split, its
/// government line kind.
#[derive(Debug, Clone, Copy)]
pub struct AreaLines {
    /// The kind of the customer's line.
    pub customer: LineKindId,
    /// The kind of the government's line: required when the pricing has a payer split
    /// ([`AreaPricing::has_split`]), unused otherwise.
    pub government: Option<LineKindId>,
    /// Whether a free early-start or extension day gets a 0.00 line recording the service.
    pub record_free_days: bool,
}

/// One day's area charge, before it becomes lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaCharge {
    /// The area billed, m².
    pub area: Decimal,
    /// How the day accrues.
    pub accrual: Accrual,
    /// The customer's price per m² (after surcharge and share, less the government's part).
    pub customer_price: Decimal,
    /// The government's price per m² (after share).
    pub government_price: Decimal,
    /// The customer's amount for the day, in fen.
    pub customer_fen: i128,
    /// The government's amount for the day in fen (zero without a split).
    pub government_fen: i128,
    /// With a per-season price: the customer's and the government's season amounts in fen,
    /// which the day's amounts are the parts of (`round(area × price) − round(area ×
    /// government price)` and `round(area × government price)`). `None` with a per-day price.
    pub season_fen: Option<(i128, i128)>,
}

impl AreaCharge {
    /// The customer's amount for the day.
    pub fn customer(&self) -> Decimal {
        from_fen(self.customer_fen)
    }

    /// The government's amount for the day.
    pub fn government(&self) -> Decimal {
        from_fen(self.government_fen)
    }
}

fn non_negative(what: &str, d: Decimal) -> Result<Decimal, RuleError> {
    if d.is_sign_negative() && !d.is_zero() {
        return Err(bad_params(format!(
            "`{what}` is {d}: it must not be negative"
        )));
    }
    Ok(d)
}

impl AreaPricing {
    /// Checks the parameters: prices not negative, the government's part not above the
    /// price, special classes well formed, surcharge steps positive.
    pub fn new(p: AreaParams) -> Result<AreaPricing, RuleError> {
        let gov = p.government_prices.clone().unwrap_or_default();
        let class_price = |name: &str, price: Decimal, g: Option<Decimal>| {
            let price = non_negative(&format!("prices.{name}"), price)?;
            let government =
                non_negative(&format!("government_prices.{name}"), g.unwrap_or_default())?;
            if government > price {
                return Err(bad_params(format!(
                    "`government_prices.{name}` {government} is more than the price {price}: the government's part is a part of the price"
                )));
            }
            Ok(Price { price, government })
        };
        let residential = class_price("residential", p.prices.residential, gov.residential)?;
        let non_residential = class_price(
            "non-residential",
            p.prices.non_residential,
            gov.non_residential,
        )?;
        let mut specials = Vec::new();
        for (name, s) in p.special_classes {
            let key = format!("special_classes.{name}");
            if name.is_empty() {
                return Err(bad_params("special_classes: a class name is empty"));
            }
            let government = non_negative(
                &format!("{key}.government_price"),
                s.government_price.unwrap_or_default(),
            )?;
            let (fixed, share) = match (s.price, s.share) {
                (Some(price), None) if s.share_of.is_none() => {
                    let price = non_negative(&format!("{key}.price"), price)?;
                    if government > price {
                        return Err(bad_params(format!(
                            "`{key}.government_price` is more than its price"
                        )));
                    }
                    (Some(Price { price, government }), Decimal::ONE)
                }
                (None, Some(share)) => (None, non_negative(&format!("{key}.share"), share)?),
                _ => {
                    return Err(bad_params(format!(
                        "`{key}`: give either \"price\" (元/m²) or \"share\" (of a class's price, with an optional \"share_of\"), e.g. {{\"share\": \"0.5\", \"share_of\": \"non-residential\"}}"
                    )));
                }
            };
            specials.push(Special {
                name,
                fixed,
                share,
                share_of: s.share_of,
                government,
            });
        }
        let surcharge = match p.ceiling_surcharge {
            None => None,
            Some(s) => {
                if s.step <= Decimal::ZERO {
                    return Err(bad_params(
                        "`ceiling_surcharge.step` must be more than 0, e.g. \"0.1\" (m)",
                    ));
                }
                non_negative("ceiling_surcharge.threshold", s.threshold)?;
                non_negative("ceiling_surcharge.rate", s.rate)?;
                if s.classes.is_empty() {
                    return Err(bad_params(
                        "`ceiling_surcharge.classes` is empty: list the classes it applies to, e.g. [\"non-residential\"]",
                    ));
                }
                Some(Surcharge {
                    residential: s.classes.contains(&CustomerClass::Residential),
                    non_residential: s.classes.contains(&CustomerClass::NonResidential),
                    threshold: s.threshold,
                    step: s.step,
                    rate: s.rate,
                    steps: s.steps,
                    max_steps: s.max_steps,
                })
            }
        };
        Ok(AreaPricing {
            basis: p.area_basis,
            pricing: p.pricing,
            residential,
            non_residential,
            specials,
            surcharge,
            split: p.government_prices.is_some(),
        })
    }

    /// Whether a payer split is configured (the plugin announces a government line kind).
    pub fn has_split(&self) -> bool {
        self.split
    }

    /// The billed area of a customer: building or usable, per `area_basis`.
    #[inline]
    pub fn area(&self, day: &CustomerDay) -> Result<Decimal, RuleError> {
        billed_area(self.basis, day)
    }

    /// The surcharge factor for the customer's ceiling height (1 without a surcharge).
    pub fn surcharge_factor(&self, day: &CustomerDay) -> Result<Decimal, RuleError> {
        let Some(s) = &self.surcharge else {
            return Ok(Decimal::ONE);
        };
        let applies = match day.class {
            CustomerClass::Residential => s.residential,
            CustomerClass::NonResidential => s.non_residential,
        };
        let Some(h) = day.ceiling_height else {
            return Ok(Decimal::ONE);
        };
        if !applies {
            return Ok(Decimal::ONE);
        }
        let h = input(h, "ceiling-height")?;
        if h <= s.threshold {
            return Ok(Decimal::ONE);
        }
        let ratio = (h - s.threshold) / s.step;
        let mut steps = match s.steps {
            StepCount::Started => ratio.ceil(),
            StepCount::Completed => ratio.floor(),
        };
        if let Some(max) = s.max_steps {
            steps = steps.min(Decimal::from(max));
        }
        Ok(Decimal::ONE + steps * s.rate)
    }

    /// The customer's price and government part per m², before surcharge.
    fn base_price(&self, day: &CustomerDay) -> Result<Price, RuleError> {
        let of_class = |c: CustomerClass| match c {
            CustomerClass::Residential => self.residential,
            CustomerClass::NonResidential => self.non_residential,
        };
        let Some(name) = &day.special_class else {
            return Ok(of_class(day.class));
        };
        let Some(s) = self.specials.iter().find(|s| s.name == *name) else {
            return Err(RuleError::Unsupported(format!(
                "the special class {name:?} has no price: add it to the tariff's special_classes"
            )));
        };
        Ok(match s.fixed {
            Some(p) => p,
            None => Price {
                price: of_class(s.share_of.unwrap_or(day.class)).price * s.share,
                government: s.government,
            },
        })
    }

    /// The day's charge at `share` of the full price (1 for a tariff, 0.30 for a suspended
    /// customer's base fee), or `None` on a day that is not a heating day.
    ///
    /// The money is computed in whole fen with integer arithmetic ([`mul_fen`],
    /// [`Accrual::season_share_fen`]): exact, and several times faster than `Decimal`
    /// multiplication and rounding, which matters at a million customers a night.
    pub fn charge(
        &self,
        day: &CustomerDay,
        share: Decimal,
    ) -> Result<Option<AreaCharge>, RuleError> {
        let accrual = Accrual::of(day)?;
        if !accrual.is_heating_day() {
            return Ok(None);
        }
        let area = self.area(day)?;
        let base = self.base_price(day)?;
        let factor = self.surcharge_factor(day)?;
        let mut full = base.price;
        if factor != Decimal::ONE {
            full *= factor;
        }
        let mut government_price = base.government;
        if share != Decimal::ONE {
            full *= share;
            government_price *= share;
        }
        let has_government = !government_price.is_zero();
        let customer_price = if has_government {
            full - government_price
        } else {
            full
        };
        // The season (or day) amounts, each rounded to the fen once; the customer's part is
        // the rest, so the two add up to the full amount.
        let total = mul_fen(area, full)?;
        let government_total = if has_government {
            mul_fen(area, government_price)?
        } else {
            0
        };
        let customer_total = total - government_total;
        let season_fen = match self.pricing {
            Pricing::Season => Some((customer_total, government_total)),
            Pricing::Day => None,
        };
        let (customer, government) = match self.pricing {
            Pricing::Season => (
                accrual.season_share_fen(customer_total)?,
                if has_government {
                    accrual.season_share_fen(government_total)?
                } else {
                    Some(0)
                },
            ),
            Pricing::Day => (
                accrual.per_day_fen(customer_total),
                accrual.per_day_fen(government_total),
            ),
        };
        Ok(Some(AreaCharge {
            area,
            accrual,
            customer_price,
            government_price,
            customer_fen: customer.unwrap_or_default(),
            government_fen: government.unwrap_or_default(),
            season_fen,
        }))
    }

    /// The day's lines: the customer's line, and with a payer split the government's line when
    /// its amount is not zero. A free early-start or extension day gets one 0.00 customer line
    /// when `lines.record_free_days`, else nothing. Pushes nothing on days that are not heating
    /// days.
    #[inline]
    pub fn push_lines(
        &self,
        day: &CustomerDay,
        share: Decimal,
        lines: AreaLines,
        out: &mut Vec<Line>,
    ) -> Result<(), RuleError> {
        // A free day this plugin does not record bills nothing, so nothing it would need (the
        // area: a usable area a customer lacks) is asked for: a missing input that cannot
        // change the bill must not park it.
        if !lines.record_free_days && Accrual::of(day)? == Accrual::Free {
            return Ok(());
        }
        let Some(c) = self.charge(day, share)? else {
            return Ok(());
        };
        let quantity = output(c.area, "area")?;
        // A per-season price's line says which season amount it is a part of (contract
        // 0.2.0), so a subsidy of it is spread from the same amount.
        let season = |fen: i128| match c.season_fen {
            Some(_) if fen != 0 => fen_to_wit(fen).map(Some),
            _ => Ok(None),
        };
        let (customer_season, government_season) = c.season_fen.unwrap_or_default();
        out.push(Line {
            spec: lines.customer.index(),
            quantity,
            unit_price: output(c.customer_price, "unit price")?,
            amount: fen_to_wit(c.customer_fen)?,
            payer: Payer::Customer,
            season_amount: season(customer_season)?,
        });
        if self.split && c.government_fen != 0 {
            // A configuration that splits the price announces the government's kind; a plugin
            // that forgot to is told, never billed short.
            let Some(government) = lines.government else {
                return Err(RuleError::Unsupported(
                    "the price has a government share but the plugin announced no government \
                     line kind (AreaLines::government)"
                        .into(),
                ));
            };
            out.push(Line {
                spec: government.index(),
                quantity,
                unit_price: output(c.government_price, "unit price")?,
                amount: fen_to_wit(c.government_fen)?,
                payer: Payer::Government,
                season_amount: season(government_season)?,
            });
        }
        Ok(())
    }
}

/// The billed area of a customer by `basis`: a missing usable area is
/// [`RuleError::MissingInput`], a negative area [`RuleError::InvalidInput`].
#[inline]
pub fn billed_area(basis: AreaBasis, day: &CustomerDay) -> Result<Decimal, RuleError> {
    let (area, field) = match basis {
        AreaBasis::Building => (day.building_area, "building-area"),
        AreaBasis::Usable => match day.usable_area {
            Some(a) => (a, "usable-area"),
            None => {
                return Err(RuleError::MissingInput(
                    "the customer has no usable area (使用面积) and the tariff bills by usable area: record it, or bill by building area (area_basis = \"building\")".into(),
                ));
            }
        },
    };
    let area = input(area, field)?;
    if area.is_sign_negative() && !area.is_zero() {
        return Err(RuleError::InvalidInput(format!(
            "the {field} is {area} m²: an area cannot be negative"
        )));
    }
    Ok(area)
}

impl fmt::Display for AreaBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AreaBasis::Building => "building",
            AreaBasis::Usable => "usable",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::parse;
    use crate::testing::day;

    fn pricing(json: &str) -> AreaPricing {
        AreaPricing::new(parse(json).unwrap()).unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    const HARBIN: &str = r#"{"area_basis": "usable", "prices": {"residential": "38.32", "non-residential": "43.3"},
        "ceiling_surcharge": {"threshold": "3.2", "step": "0.1", "rate": "0.03", "steps": "completed"}}"#;
    const SHENYANG: &str = r#"{"prices": {"residential": "26", "non-residential": "32"},
        "government_prices": {"residential": "2.7"},
        "special_classes": {"garage": {"share": "0.5", "share_of": "non-residential"}},
        "ceiling_surcharge": {"threshold": "3.5", "step": "0.3", "rate": "0.10"}}"#;

    #[test]
    fn harbin_surcharge_counts_completed_steps() {
        let p = pricing(HARBIN);
        let f = |h: &str| {
            p.surcharge_factor(
                &day("2025-11-01")
                    .non_residential()
                    .ceiling_height(h)
                    .build(),
            )
            .unwrap()
        };
        assert_eq!(f("3.2"), d("1"));
        assert_eq!(f("3.29"), d("1"));
        assert_eq!(f("3.3"), d("1.03"));
        assert_eq!(f("3.55"), d("1.09"));
        // Residential customers are not surcharged by default.
        let r = day("2025-11-01").ceiling_height("4.0").build();
        assert_eq!(p.surcharge_factor(&r).unwrap(), d("1"));
    }

    #[test]
    fn shenyang_surcharge_counts_started_steps() {
        let p = pricing(SHENYANG);
        let f = |h: &str| {
            p.surcharge_factor(
                &day("2025-11-01")
                    .non_residential()
                    .ceiling_height(h)
                    .build(),
            )
            .unwrap()
        };
        assert_eq!(f("3.5"), d("1"));
        assert_eq!(f("3.51"), d("1.10"));
        assert_eq!(f("3.8"), d("1.10"));
        assert_eq!(f("3.81"), d("1.20"));
        // No recorded height: no surcharge.
        let none = day("2025-11-01").non_residential().build();
        assert_eq!(p.surcharge_factor(&none).unwrap(), d("1"));
    }

    #[test]
    fn payer_split_adds_up_over_the_season() {
        let p = pricing(SHENYANG);
        let mut customer = Decimal::ZERO;
        let mut government = Decimal::ZERO;
        for k in 1..=151 {
            let c = p
                .charge(
                    &day("2025-11-01")
                        .building_area("80")
                        .regular(k, 151)
                        .build(),
                    Decimal::ONE,
                )
                .unwrap()
                .unwrap();
            customer += c.customer();
            government += c.government();
        }
        // 80 × 23.3 and 80 × 2.7.
        assert_eq!(customer, d("1864.00"));
        assert_eq!(government, d("216.00"));
    }

    #[test]
    fn special_classes() {
        let p = pricing(SHENYANG);
        let garage = day("2025-11-01")
            .special_class("garage")
            .building_area("20")
            .regular(1, 151)
            .build();
        let c = p.charge(&garage, Decimal::ONE).unwrap().unwrap();
        assert_eq!(c.customer_price, d("16.0"));
        assert_eq!(c.government(), d("0"));
        let shed = day("2025-11-01")
            .special_class("shed")
            .building_area("20")
            .regular(1, 151)
            .build();
        assert!(matches!(
            p.charge(&shed, Decimal::ONE),
            Err(RuleError::Unsupported(_))
        ));
        let fixed = pricing(
            r#"{"prices": {"residential": "26", "non-residential": "32"}, "special_classes": {"garage": {"price": "12"}}}"#,
        );
        let c = fixed.charge(&garage, Decimal::ONE).unwrap().unwrap();
        assert_eq!(c.customer_price, d("12"));
    }

    #[test]
    fn areas() {
        let p = pricing(HARBIN);
        let no_usable = day("2025-11-01")
            .building_area("75")
            .regular(1, 183)
            .build();
        assert!(matches!(
            p.charge(&no_usable, Decimal::ONE),
            Err(RuleError::MissingInput(_))
        ));
        let negative = day("2025-11-01").usable_area("-1").regular(1, 183).build();
        assert!(matches!(
            p.charge(&negative, Decimal::ONE),
            Err(RuleError::InvalidInput(_))
        ));
        let outside = day("2025-06-01").usable_area("60").outside(183).build();
        assert_eq!(p.charge(&outside, Decimal::ONE).unwrap(), None);
        let no_season = day("2025-06-01").usable_area("60").build();
        assert_eq!(p.charge(&no_season, Decimal::ONE).unwrap(), None);
    }

    #[test]
    fn bad_params_say_what_to_fix() {
        let err = |json: &str| match parse::<AreaParams>(json).map(AreaPricing::new) {
            Ok(Err(RuleError::BadParams(m))) | Err(RuleError::BadParams(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            err(r#"{"prices": {"residential": "-1", "non-residential": "1"}}"#)
                .contains("prices.residential")
        );
        assert!(err(r#"{"prices": {"residential": "1", "non-residential": "1"}, "government_prices": {"residential": "2"}}"#).contains("more than the price"));
        assert!(err(r#"{"prices": {"residential": "1", "non-residential": "1"}, "special_classes": {"garage": {}}}"#).contains("either"));
        assert!(err(r#"{"prices": {"residential": "1", "non-residential": "1"}, "ceiling_surcharge": {"threshold": "3", "step": "0", "rate": "0.1"}}"#).contains("step"));
        assert!(err(r#"{"prices": {"residential": "1"}}"#).contains("non-residential"));
        assert!(
            err(
                r#"{"prices": {"residential": "1", "non-residential": "1"}, "area_basis": "floor"}"#
            )
            .contains("area_basis")
        );
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Extra {
        #[serde(with = "crate::params::decimal")]
        share: Decimal,
    }

    #[test]
    fn with_area_splits_keys_and_rejects_unknown_ones() {
        let p: WithArea<Extra> =
            parse(r#"{"share": "0.3", "prices": {"residential": "1", "non-residential": "2"}}"#)
                .unwrap();
        assert_eq!(p.extra.share, d("0.3"));
        assert_eq!(p.area.prices.non_residential, d("2"));
        let e = parse::<WithArea<Extra>>(r#"{"share": "0.3", "prices": {"residential": "1", "non-residential": "2"}, "sahre": "1"}"#).unwrap_err();
        assert!(
            e.message().contains("unknown field `sahre`") && e.message().contains("area_basis"),
            "{}",
            e.message()
        );
        let e = parse::<WithArea<Extra>>(
            r#"{"share": "0.3", "prices": {"residential": 1, "non-residential": "2"}}"#,
        )
        .unwrap_err();
        assert!(
            e.message().contains("prices.residential"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn area_keys_match_the_struct_and_the_schema() {
        let schema: Value = serde_json::from_str(&crate::params::schema::<AreaParams>()).unwrap();
        let mut keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected = AREA_KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        // Every key is accepted by AreaParams (a key missing from the struct would be refused).
        let json = r#"{"area_basis": "usable", "prices": {"residential": "1", "non-residential": "2"}, "pricing": "day", "special_classes": {}, "ceiling_surcharge": null, "government_prices": null}"#;
        assert!(parse::<AreaParams>(json).is_ok());
    }
}
