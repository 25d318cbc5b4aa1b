// Hostile fixture: never returns. Only the host's limits (fuel, epoch deadline) end the call.

export default class Spins {
  static configure() {
    return new Spins();
  }
  evaluate() {
    let n = 0;
    for (;;) n += 1; // past 2^53 n stops growing; the loop never ends
  }
}
