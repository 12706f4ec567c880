export const FERRY_VERSION = '0.1.0';
