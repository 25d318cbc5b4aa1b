// Hostile fixture: a bug. The adapter writes the message and stack to stderr and rethrows, so
// the host sees a trap (not a rule error) and its log has "js-throws: deliberate failure".

export default class Throws {
  static configure() {
    return new Throws();
  }
  evaluate() {
    throw new Error('js-throws: deliberate failure');
  }
}
