// Where recorded responses wait: IndexedDB, so that they outlive a reload or a closed tab, and
// the next start() in this browser sends what is left; in memory where IndexedDB is refused
// (private modes, a third-party iframe as MTurk shows a HIT in), reported as not durable.
//
// Two object stores: `places` (one row per experiment and participant in this browser: the
// session it runs, how many page loads it had) and `items` (every response recorded for a
// session, sent or not, until the session is completed: complete() resends them all on 409
// incomplete).

export interface Item {
  responseId: string;
  sessionId: string;
  /** Order of recording within the session: the order in which items are sent. */
  seq: number;
  level: number | null;
  data: unknown;
  /** Size of the item's JSON in bytes. */
  bytes: number;
  /** 1 once the server answered for it. */
  sent: 0 | 1;
  /** Why the server refused it (a 400 for this item): set aside, never sent again. */
  rejected?: string;
}

export interface Place {
  place: string;
  sessionId: string;
  visitorNumber: number | null;
  condition: string | null;
  /** Page loads that started this session (the jsPsych extension's attempt). */
  loads: number;
  completed: boolean;
}

export interface Store {
  readonly durable: boolean;
  place(place: string): Promise<Place | undefined>;
  putPlace(place: Place): Promise<void>;
  items(sessionId: string): Promise<Item[]>;
  putItems(items: Item[]): Promise<void>;
  deleteItems(sessionId: string): Promise<void>;
}

export class MemoryStore implements Store {
  readonly durable = false;
  private places = new Map<string, Place>();
  private stored = new Map<string, Item>();

  async place(place: string) {
    return this.places.get(place);
  }
  async putPlace(place: Place) {
    this.places.set(place.place, { ...place });
  }
  async items(sessionId: string) {
    return [...this.stored.values()].filter((item) => item.sessionId === sessionId);
  }
  async putItems(items: Item[]) {
    for (const item of items) this.stored.set(item.responseId, { ...item });
  }
  async deleteItems(sessionId: string) {
    for (const [id, item] of this.stored) if (item.sessionId === sessionId) this.stored.delete(id);
  }
}

function done<T>(request: IDBRequest<T> | IDBTransaction): Promise<T> {
  return new Promise((resolve, reject) => {
    if (request instanceof IDBTransaction) {
      request.oncomplete = () => resolve(undefined as T);
      request.onerror = request.onabort = () => reject(request.error);
    } else {
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    }
  });
}

export class IndexedDbStore implements Store {
  readonly durable = true;
  constructor(private db: IDBDatabase) {}

  static async open(name = "visitor-sessions"): Promise<IndexedDbStore> {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("places", { keyPath: "place" });
      db.createObjectStore("items", { keyPath: "responseId" }).createIndex("session", "sessionId");
    };
    // Some browsers never answer in private mode: give up after 3 s (the outbox goes to memory).
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("IndexedDB did not open")), 3000));
    return new IndexedDbStore(await Promise.race([done(request), timeout]));
  }

  async place(place: string) {
    return (await done(this.db.transaction("places").objectStore("places").get(place))) as Place | undefined;
  }
  async putPlace(place: Place) {
    const tx = this.db.transaction("places", "readwrite");
    tx.objectStore("places").put(place);
    await done(tx);
  }
  async items(sessionId: string) {
    const index = this.db.transaction("items").objectStore("items").index("session");
    return (await done(index.getAll(sessionId))) as Item[];
  }
  async putItems(items: Item[]) {
    const tx = this.db.transaction("items", "readwrite");
    const store = tx.objectStore("items");
    for (const item of items) store.put(item);
    await done(tx);
  }
  async deleteItems(sessionId: string) {
    const keys = await done(this.db.transaction("items").objectStore("items").index("session").getAllKeys(sessionId));
    const tx = this.db.transaction("items", "readwrite");
    for (const key of keys) tx.objectStore("items").delete(key);
    await done(tx);
  }
}

let opened: Promise<Store> | null = null;

/** This page's store: IndexedDB when it opens, memory otherwise (never a refused trial). */
export function openStore(): Promise<Store> {
  opened ??= (async () => {
    try {
      if (typeof indexedDB === "undefined") throw new Error("no IndexedDB");
      return await IndexedDbStore.open();
    } catch {
      return new MemoryStore();
    }
  })();
  return opened;
}
