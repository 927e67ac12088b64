// The folders testing/run_tests.ts looks for *.test.ts in. One list, so the layout test can
// prove that no test file sits where the runner (and so `npm test` and CI) would never find it.
export const TEST_ROOTS: readonly string[] = ["server", "client-sdk", "witness", "cli", "testing", "tools"];
