// The bits of a customer-day (`day-bits` in wit/rules.wit): how the host's columnar batch
// carries class, status, flags and which optional values are present, and what a day filter
// tests. A plugin declares the customer-days it bills with a filter, so the host calls it only
// for those (a subsidy for low-income households is then not called for everyone).

export const NON_RESIDENTIAL = 1 << 0;
export const SUSPENDED = 1 << 1;
export const METERED = 1 << 2;
export const LOW_INCOME = 1 << 3;
export const HAS_USABLE_AREA = 1 << 4;
export const HAS_CEILING_HEIGHT = 1 << 5;
export const HAS_HEAT = 1 << 6;
export const HAS_INDOOR_TEMPERATURE = 1 << 7;
export const HAS_ARREARS_SINCE = 1 << 8;
export const HAS_SEASON = 1 << 9;
export const SEASON_CHARGED = 1 << 10;

/**
 * Which customer-days a configured plugin bills (`day-filter`): every bit of `allOf` set and none
 * of `noneOf`. A promise: outside it, `evaluate` must return no lines and no error.
 */
export class DayFilter {
  /** @param {number} allOf @param {number} noneOf */
  constructor(allOf = 0, noneOf = 0) {
    this.allOf = allOf >>> 0;
    this.noneOf = noneOf >>> 0;
  }
  /** Also requires every bit of `bits`. */
  require(bits) {
    return new DayFilter(this.allOf | bits, this.noneOf);
  }
  /** Also excludes every customer-day with any bit of `bits`. */
  exclude(bits) {
    return new DayFilter(this.allOf, this.noneOf | bits);
  }
  /** Whether a customer-day with these bits is billed. */
  matches(bits) {
    return (bits & this.allOf) === this.allOf && (bits & this.noneOf) === 0;
  }
  /** The WIT record. */
  toWit() {
    return { allOf: this.allOf, noneOf: this.noneOf };
  }
}

/** Every customer-day. */
DayFilter.ALL = new DayFilter(0, 0);

/** The bits of a WIT `customer-day` record, as the host computes them for its batch. */
export function bitsOf(day) {
  let b = 0;
  if (day.class === 'non-residential') b |= NON_RESIDENTIAL;
  if (day.status === 'suspended') b |= SUSPENDED;
  if (day.flags.metered) b |= METERED;
  if (day.flags.lowIncome) b |= LOW_INCOME;
  if (day.usableArea !== undefined) b |= HAS_USABLE_AREA;
  if (day.ceilingHeight !== undefined) b |= HAS_CEILING_HEIGHT;
  if (day.heat !== undefined) b |= HAS_HEAT;
  if (day.indoorTemperature !== undefined) b |= HAS_INDOOR_TEMPERATURE;
  if (day.arrearsSince !== undefined) b |= HAS_ARREARS_SINCE;
  if (day.season !== undefined) {
    b |= HAS_SEASON;
    if (day.season.charged) b |= SEASON_CHARGED;
  }
  return b;
}
