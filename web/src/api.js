// The signed-in person's requests (the home, cycle, group, library and clip pages): same-origin, with the session
// cookie the page never sees. A 401 means the sign-in ended: the sign-in page, coming back here.
import { errorOf } from './util.js'

export async function api (path, options = {}) {
  const response = await fetch(path, { credentials: 'same-origin', ...options })
  if (response.status === 401) {
    const here = location.pathname === '/' ? '' : `?next=${encodeURIComponent(location.pathname)}`
    location.replace(`/${here}`)
    const error = new Error('You are not signed in any more.')
    error.status = 401
    throw error
  }
  if (!response.ok) {
    const { code, message } = await errorOf(response)
    const error = new Error(message || `${response.status} ${response.statusText}`)
    error.status = response.status
    error.code = code
    throw error
  }
  return response
}

export const json = async (path, options) => (await api(path, options)).json()

export const sendJson = (path, body, method = 'POST') => json(path, {
  method,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(body)
})
