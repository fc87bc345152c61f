/**
 * The one fetch path of the extension: every call to simlab's REST API under
 * `{baseUrl}/simlab/api/` goes through `requestAPI`, which turns network
 * failures into `ServerConnection.NetworkError` and non-OK replies into an
 * `APIError` carrying the server's message and, for a refused run
 * configuration (422), one entry per invalid field.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One invalid field of a refused run configuration (simlab's ConfigError). */
export interface IFieldError {
  /** Dotted field path, e.g. `box.particles_per_side`. */
  loc: string;
  value: unknown;
  msg: string;
}

/**
 * A non-OK reply: the HTTP status, the server's own message (never a generic
 * "Unhandled error" when the server said more) and the field errors of a 422.
 */
export class APIError extends ServerConnection.ResponseError {
  constructor(response: Response, message: string, errors: IFieldError[]) {
    super(response, message);
    this.name = 'APIError';
    this.status = response.status;
    this.errors = errors;
  }

  /** The HTTP status code. */
  readonly status: number;
  /** One entry per invalid field (422), else empty. */
  readonly errors: IFieldError[];
}

/** A human message for any error a request can throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof APIError && error.errors.length > 0) {
    return error.errors.map(e => `${e.loc}: ${e.msg}`).join('\n');
  }
  return error instanceof Error ? error.message : String(error);
}

/** Namespace of simlab's routes on the server. */
export const NAMESPACE = 'simlab/api';

/** The URL of an API endpoint (for links and event streams). */
export function apiUrl(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return URLExt.join(settings.baseUrl, NAMESPACE, endPoint);
}

/**
 * Call an API endpoint and decode its JSON answer.
 *
 * @param endPoint - path below `simlab/api/`, with its query string
 * @param init - fetch options (method, body)
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      apiUrl(endPoint, settings),
      init,
      settings
    );
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch (error) {
      console.warn('simlab: not a JSON answer', text);
    }
  }
  if (!response.ok) {
    const message =
      (typeof data === 'object' && data !== null && data.message) ||
      text ||
      `${response.status} ${response.statusText}`;
    const errors = Array.isArray(data?.errors) ? (data.errors as IFieldError[]) : [];
    throw new APIError(response, message, errors);
  }
  return data as T;
}
