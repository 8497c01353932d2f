/**
 * The version, from package.json, so the binary, the bundle and the sources
 * never disagree.
 */
import packageJson from "../package.json" with { type: "json" };

export const VERSION: string = packageJson.version;
