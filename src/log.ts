// Logging: pino JSON lines. Child loggers carry a link id, never stanza bodies or credentials.
import { pino, type Logger as PinoLogger, type DestinationStream } from "pino";

export type Logger = PinoLogger;

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: "mucmux" },
      // Belt and braces: never let a credential reach the log even if someone logs a whole object.
      redact: { paths: ["password", "*.password", "credentials", "*.credentials"], censor: "[redacted]" },
    },
    destination,
  );
}
