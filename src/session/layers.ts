// Wires the optional layers into session hooks. Each import is one layer; a layer's
// module registers its hooks when imported. Kept in one place so the session core
// does not depend on any layer.
export {};
