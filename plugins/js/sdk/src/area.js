// The area a customer is billed on (building or usable), as the reference plugins read it.

import { MissingInput, InvalidInput } from './errors.js';

/**
 * The billed area: `building` (建筑面积) or `usable` (使用面积). A customer without a usable area
 * billed by usable area is a `missing-input` error; a negative area an `invalid-input` error.
 * @param {'building' | 'usable'} basis
 * @param {{buildingArea: import('./decimal.js').Decimal, usableArea?: import('./decimal.js').Decimal}} day
 */
export function billedArea(basis, day) {
  let area = day.buildingArea;
  let field = 'building-area';
  if (basis === 'usable') {
    if (day.usableArea === undefined) {
      throw new MissingInput(
        'the customer has no usable area (使用面积) and the tariff bills by usable area: record it, or bill by building area (area_basis = "building")',
      );
    }
    area = day.usableArea;
    field = 'usable-area';
  }
  if (area.isNegative()) throw new InvalidInput(`the ${field} is ${area} m²: an area cannot be negative`);
  return area;
}
