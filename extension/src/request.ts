/**
 * The one fetch path of the extension: every call to simlab's REST API under
 * `{baseUrl}/simlab/api/` goes through `requestAPI`, which turns network
 * failures into `ServerConnection.NetworkError` and non-OK replies into
 * `ServerConnection.ResponseError` carrying the server's message.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

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
    throw new ServerConnection.ResponseError(response, data.message || text);
  }
  return data as T;
}
