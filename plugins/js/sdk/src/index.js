// @heatbill/sdk: write heatbill rules plugins (WIT world `rules-plugin`, contract 0.2.0) in
// JavaScript. See ../../README.md.

export { Decimal, MAX_SCALE, roundFen, cumulativeShare, cumulativeShareFen, dailyRate, dailyRateFen, divRound, pow10 } from './decimal.js';
export { RuleError, BadParams, MissingInput, InvalidInput, Unsupported, truncate, MAX_MESSAGE_BYTES } from './errors.js';
export { toDays, fromDays, parseDate, formatDate, compareDates } from './date.js';
export * as bits from './bits.js';
export { DayFilter } from './bits.js';
export * as params from './params.js';
export { Accrual, isHeatingDay } from './season.js';
export { billedArea } from './area.js';
export { RecordDay, BatchRow, LineKinds, line, NO_LINES, PAYERS, PHASES, CATEGORY_NAMES } from './day.js';
export { BatchWriter, DecimalColumnReader, i64Words, numAt, roundPow10, POW10_NUM, lineToWit } from './columns.js';
