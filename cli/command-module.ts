/**
 * The shape of every `spillway` command: a yargs command module whose handler's argv type is inferred
 * from its builder, so no command casts its arguments.
 */
import type { Argv, CommandModule } from "yargs";

/** A command module on the root command line; `Args` comes from the builder. */
export type SpillwayCommand<Args> = CommandModule<object, Args>;

/** Checks a command module and infers its argv type from the builder. */
export function defineCommand<Args>(module: SpillwayCommand<Args>): SpillwayCommand<Args> {
  return module;
}

/** The parsed arguments of a builder's result (`ArgsOf<ReturnType<typeof planOptions>>`). */
export type ArgsOf<Y> = Y extends Argv<infer Args> ? Args : never;
