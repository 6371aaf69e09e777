// Helpers of the page scenarios (instances, metrics, logs, files, pages).

// settle drops the console errors of requests Chrome cut with ERR_NETWORK_CHANGED: creating
// or removing an instance adds or removes a host interface (its veth), which Chrome takes
// for a network change and fails the requests open at that moment. The page retries them
// (blocking reads, event streams, log follows); any other console error still fails the
// scenario.
export function settle(problems) {
	problems.splice(0, problems.length, ...problems.filter(p => !p.includes('ERR_NETWORK_CHANGED')));
}
