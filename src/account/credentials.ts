// What an account logs in upstream with (SPEC A3: memory only, never written anywhere).
export interface Credentials { username: string; password: string }
