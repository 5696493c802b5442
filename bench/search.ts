/** `npm run bench:search`: only the search speed sections of the bench (bench/search-speed.ts). */
import { benchSearchSpeed } from "./search-speed.js";

await benchSearchSpeed();
