export * from "../../proto/tenure_protos.ts";
