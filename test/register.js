// Lets node's test runner and the benchmarks load TypeScript sources directly (tsx), without a build step.
import { register } from 'tsx/esm/api';

register();
