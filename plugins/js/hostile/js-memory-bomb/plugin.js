// Hostile fixture: allocates without bound (1 MiB blocks kept alive), until the host's memory
// cap stops the instance.

export default class MemoryBomb {
  static configure() {
    return new MemoryBomb();
  }
  evaluate() {
    const kept = [];
    for (;;) {
      const block = new Uint8Array(1 << 20);
      block.fill(kept.length & 0xff); // touch every page: reserved but unused memory is not enough
      kept.push(block);
    }
  }
}
