// A clock the test moves by hand (the control plane's Clock port): time passes only on advance().
export function manualClock(start = Date.now()) {
  let t = start
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) }
}
