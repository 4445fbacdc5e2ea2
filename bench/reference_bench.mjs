// Measures the reference ASL interpreter (aws-local-stepfunctions) on one
// definition and input: sequential executions for S seconds, one JSON line.
//   node reference_bench.mjs DEF.json INPUT.json SECONDS
import { readFileSync } from 'node:fs';

if (typeof Promise.withResolvers !== 'function') {  // Node 20 lacks it; the library needs it
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
const { StateMachine } = await import('aws-local-stepfunctions');
const [defPath, inputPath, secondsArg] = process.argv.slice(2);
const definition = JSON.parse(readFileSync(defPath, 'utf8'));
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const seconds = Number(secondsArg || 5);
const machine = new StateMachine(definition, { validationOptions: { checkPaths: false } });
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
let executions = 0;
while (process.hrtime.bigint() < deadline) {
  const execution = machine.run(input, { overrides: { waitTimeOverrides: {} } });
  await execution.result;
  executions++;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ executions_per_sec: Math.round(executions / elapsed), executions, seconds: elapsed }));
